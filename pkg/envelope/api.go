// Package envelope seals and opens Bosun envelope v2, the signed wrapper every
// JSON-RPC message between a device and the cloud travels in.
//
// An envelope is a JSON object with two members: "meta" (version, signer,
// audience, direction, session, sequence number, timestamp, algorithm,
// signature) and "payload" (the JSON-RPC message). docs/protocol.md describes
// the bytes; the test vectors in testdata/ pin them down.
//
// The design choices, and why:
//
//   - The payload is signed as the exact bytes on the wire, so no JSON
//     canonicalisation is needed and an implementation in any language can
//     verify what it received without re-encoding it.
//   - The signed bytes are length-prefixed fields behind a domain tag
//     ("bosun-envelope-v2\x00"), so no two different metas can produce the same
//     signed bytes and an envelope signature can never be confused with any other
//     signature made by the same key.
//   - Every message carries the session the cloud issued when the websocket
//     opened, so a captured message is worthless in any other session.
//   - Within a session, each direction numbers its messages 1, 2, 3, ... in a
//     signed seq, and the receiver's ReplayWindow (the sliding window of IPsec
//     ESP, RFC 4303 §3.4.3) refuses a seq it has accepted before or one too
//     old to tell. That costs a fixed 136 bytes per session and imposes no
//     rate limit, where v1's set of random nonces grew with the message rate
//     and had to be capped.
//   - The verifier takes the algorithm from the key it holds for the signer,
//     never from the message (the "alg" confusion attacks of JOSE).
//   - Parsing is strict (no duplicate, unknown or case-variant keys; valid UTF-8
//     only) because a lenient parser lets two parsers read one message
//     differently, and a signature only means something if everyone reads the
//     same thing.
//   - Every rejection has its own sentinel error, checked in a fixed order (see
//     Opener.Open), so callers can map failures to close codes and metrics.
package envelope

import (
	"crypto"
	"encoding/json"
	"errors"
	"time"
)

// Version is the envelope version this package speaks: the value of meta.v.
// A new version changes the domain tag of the signed bytes too.
const Version = 2

// MaxSeq is the largest sequence number, 2^53−1: the largest integer a JSON
// number carries exactly in every language (JavaScript's
// Number.MAX_SAFE_INTEGER), so no implementation misreads a seq. Numbering
// from 1, a session exhausts it only after 2^53−1 messages, which never
// happens; a sender that gets there must close the session and open a new
// one, since Seal refuses a larger seq.
const MaxSeq uint64 = 1<<53 - 1

// DefaultWindow is the size of a ReplayWindow, in seqs (bits of its bitmap),
// when NewReplayWindow is given zero or less, and of the zero value. A sender
// must never write a message more than DefaultWindow−1 seqs behind the
// highest one it has written on the session.
const DefaultWindow = 1024

// AudienceAny is the audience of the cloud's auth.challenge, the one message
// sent before the cloud knows which device it is talking to. An Opener accepts
// it only when AllowAnyAudience is set.
const AudienceAny = "*"

// DefaultMaxSize is the size limit, in bytes of wire, when Opener.MaxSize or
// Peek's maxSize is zero or negative.
const DefaultMaxSize = 1 << 20

// DefaultSkew is how far a message's timestamp may lie from the receiver's
// clock, either way, when Opener.Skew is zero or negative.
const DefaultSkew = 2 * time.Minute

// Direction says which way a message travels. It is signed, so a message one
// side sent can never be reflected back to it as if the other side had sent it.
type Direction string

// The two directions of a Bosun connection.
const (
	DeviceToCloud Direction = "device_to_cloud"
	CloudToDevice Direction = "cloud_to_device"
)

// Meta is the "meta" member of an envelope. Every field is required on the
// wire; every string is non-empty, valid UTF-8 without control characters.
type Meta struct {
	// V is always Version.
	V int `json:"v"`
	// Signer names the key that signed the message (a device id, or the
	// cloud's name).
	Signer string `json:"signer"`
	// Audience is the intended receiver, or AudienceAny.
	Audience string `json:"audience"`
	// Direction is the way the message travels.
	Direction Direction `json:"direction"`
	// Session is the challenge the cloud issued when the websocket opened.
	Session string `json:"session"`
	// Seq numbers the messages of one direction of one session: 1 for the
	// first, then one more for each message sealed; 1 to MaxSeq.
	Seq uint64 `json:"seq"`
	// TS is the sender's clock in Unix milliseconds; never negative.
	TS int64 `json:"ts"`
	// Alg is "ed25519" or "rsa-pss-sha256" (keys.AlgEd25519, keys.AlgRSAPSS).
	Alg string `json:"alg"`
	// Sig is the signature over SignedBytes, unpadded base64url.
	Sig string `json:"sig"`
}

// Header is what the caller chooses about a message; the Sealer adds the rest
// (signer, timestamp, algorithm, signature).
type Header struct {
	// Audience is the intended receiver: the cloud's name, a device id, or
	// AudienceAny for the auth.challenge.
	Audience string
	// Direction is DeviceToCloud or CloudToDevice.
	Direction Direction
	// Session is the session of the websocket the message is sent on.
	Session string
	// Seq is the message's sequence number, 1 to MaxSeq: the session engine
	// numbers the messages it sends on a session 1, 2, 3, ... (each direction
	// of each session counts on its own) and writes them in that order. The
	// receiver refuses a seq it has already accepted in the session, so a seq
	// must never be sealed twice in one session.
	Seq uint64
}

// KeyFunc returns the public key the receiver holds for signer. It returns an
// error wrapping ErrUnknownSigner (or a nil key) when it knows no such signer
// on this connection; any other error is passed through by Open, wrapped.
type KeyFunc func(signer string) (crypto.PublicKey, error)

// Opened is a verified envelope.
type Opened struct {
	// Meta is the envelope's meta, as sent.
	Meta Meta
	// Payload is the payload's exact bytes (a copy: it does not alias the
	// wire), already checked to be strict JSON.
	Payload json.RawMessage
}

// Errors returned by Open (and, for ErrTooLarge and ErrMalformed, by Peek).
// Each rejection wraps exactly one of them, so errors.Is tells them apart;
// the wrapping message names the field but quotes at most a few dozen bytes
// of what the peer sent.
var (
	// ErrTooLarge: the wire is longer than the size limit.
	ErrTooLarge = errors.New("envelope: too large")
	// ErrMalformed: the wire is not an envelope of the strict v2 shape:
	// not one JSON object, unknown, duplicate or case-variant keys, a missing
	// or empty field, a wrong type, v other than 2, a seq that is not a plain
	// integer from 1 to MaxSeq, a bad signature encoding, or trailing data.
	// Seal returns it too for a header or signer that would produce such an
	// envelope.
	ErrMalformed = errors.New("envelope: malformed")
	// ErrUnknownSigner: the KeyFunc knows no key for meta.signer.
	ErrUnknownSigner = errors.New("envelope: unknown signer")
	// ErrAlgMismatch: meta.alg is not the algorithm of the key held for the
	// signer, or that key is unusable (e.g. RSA below 2048 bits).
	ErrAlgMismatch = errors.New("envelope: algorithm does not match the signer's key")
	// ErrAudience: meta.audience is not this receiver.
	ErrAudience = errors.New("envelope: wrong audience")
	// ErrDirection: meta.direction is not the direction this receiver reads.
	ErrDirection = errors.New("envelope: wrong direction")
	// ErrSession: meta.session is not this connection's session.
	ErrSession = errors.New("envelope: wrong session")
	// ErrTooOld: meta.ts is more than the skew before the receiver's clock.
	ErrTooOld = errors.New("envelope: timestamp too old")
	// ErrFromFuture: meta.ts is more than the skew after the receiver's clock.
	ErrFromFuture = errors.New("envelope: timestamp in the future")
	// ErrReplay: meta.seq was already accepted in this session, or is below
	// the replay window (older than Top−Size+1). A receiver cannot tell a
	// replay from a message delayed past the window, so both are refused;
	// the wrapping message says which it was.
	ErrReplay = errors.New("envelope: replay refused")
	// ErrBadSignature: the signature does not verify with the signer's key.
	ErrBadSignature = errors.New("envelope: bad signature")
	// ErrPayload: the signature holds but the payload is not strict JSON
	// (exactly one value, valid UTF-8, no duplicate object keys anywhere, no
	// lone surrogate escapes). The seq has been recorded: the message is
	// authentic, merely unusable, and replaying it yields ErrReplay. Seal
	// returns it for a payload it refuses to sign.
	ErrPayload = errors.New("envelope: payload is not strict JSON")
)

// reasons names each rejection for logs and metrics, in check order.
var reasons = []struct {
	err  error
	name string
}{
	{ErrTooLarge, "too_large"},
	{ErrMalformed, "malformed"},
	{ErrUnknownSigner, "unknown_signer"},
	{ErrAlgMismatch, "alg_mismatch"},
	{ErrAudience, "wrong_audience"},
	{ErrDirection, "wrong_direction"},
	{ErrSession, "wrong_session"},
	{ErrTooOld, "too_old"},
	{ErrFromFuture, "from_future"},
	{ErrReplay, "replay"},
	{ErrBadSignature, "bad_signature"},
	{ErrPayload, "bad_payload"},
}

// Reason returns a stable snake_case name for an Open or Peek error, the
// same on both sides, for log fields and rejection counters; "invalid" for
// an error that is none of this package's sentinels.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "invalid"
}
