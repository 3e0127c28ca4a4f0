// Package envelope seals and opens Bosun envelope v1: a JSON-RPC payload
// wrapped in a signed meta block that names signer, audience, direction,
// session, nonce and timestamp. See docs/protocol.md for the byte layout.
package envelope

// CONTRACT (written by the lead; the implementer keeps these exported names and
// signatures, may add more, and replaces this comment with real docs):
//
//	const Version = 1
//	const AudienceAny = "*"          // audience of the cloud's auth.challenge
//	const DefaultMaxSize = 1 << 20   // bytes
//	const DefaultSkew = 2 * time.Minute
//	type Direction string
//	const DeviceToCloud Direction = "device_to_cloud"; CloudToDevice Direction = "cloud_to_device"
//	type Meta struct { V int; Signer, Audience string; Direction Direction; Session, Nonce string; TS int64; Alg, Sig string }  // json tags v,signer,audience,direction,session,nonce,ts,alg,sig
//	type Header struct { Audience string; Direction Direction; Session string }
//	type Sealer struct { Signer string; Key crypto.Signer; Rand io.Reader /* nil: crypto/rand */; Now func() time.Time /* nil: time.Now */ }
//	func NewSealer(signer string, key crypto.Signer) (*Sealer, error)   // checks the key via keys.Alg
//	func (s *Sealer) Seal(h Header, payload []byte) ([]byte, error)     // payload must be one valid JSON value; returns wire bytes
//	func (s *Sealer) SealAt(h Header, payload []byte, nonce [16]byte, ts time.Time) ([]byte, error) // deterministic for Ed25519 (vectors)
//	func SignedBytes(m Meta, payload []byte) []byte                     // the exact bytes that are signed
//	type KeyFunc func(signer string) (crypto.PublicKey, error)          // return ErrUnknownSigner (wrapped ok) when unknown
//	type ReplayGuard struct{...}; func NewReplayGuard(window time.Duration, max int) *ReplayGuard  // safe for concurrent use
//	func (g *ReplayGuard) Len() int
//	type Opener struct {
//	    Self string; AllowAnyAudience bool; Direction Direction; Session string
//	    Key KeyFunc; Guard *ReplayGuard; Skew time.Duration; MaxSize int; Now func() time.Time
//	}
//	type Opened struct { Meta Meta; Payload json.RawMessage }
//	func (o *Opener) Open(wire []byte) (Opened, error)
//	func Peek(wire []byte, maxSize int) (Meta, json.RawMessage, error)  // size+strict shape only, NO verification
//	var ErrTooLarge, ErrMalformed, ErrUnknownSigner, ErrAlgMismatch, ErrAudience, ErrDirection,
//	    ErrSession, ErrTooOld, ErrFromFuture, ErrReplay, ErrBadSignature, ErrGuardFull, ErrPayload error
