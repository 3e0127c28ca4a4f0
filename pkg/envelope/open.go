package envelope

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

// Opener verifies the envelopes arriving on one connection. Configure one per
// session; Open does not modify it, so it may be used concurrently.
type Opener struct {
	// Self is the receiver's own name; meta.audience must equal it.
	Self string
	// AllowAnyAudience also accepts meta.audience AudienceAny. Only the
	// device reading the cloud's auth.challenge sets it.
	AllowAnyAudience bool
	// Direction is the direction this receiver reads: DeviceToCloud in the
	// cloud, CloudToDevice on a device.
	Direction Direction
	// Session is this connection's session; meta.session must equal it.
	Session string
	// Key returns the key held for a signer. Required.
	Key KeyFunc
	// Window remembers the seqs accepted in this session. Required: without
	// it any message could be replayed within the skew. One per session: a
	// new session starts again at seq 1.
	Window *ReplayWindow
	// Skew is how far meta.ts may lie from Now, either way. Zero or less
	// means DefaultSkew.
	Skew time.Duration
	// MaxSize is the longest wire accepted, in bytes. Zero or less means
	// DefaultMaxSize.
	MaxSize int
	// Now is the receiver's clock. nil means time.Now.
	Now func() time.Time
}

// errNoKeyFunc and errNoWindow report a misconfigured Opener: a bug in the
// caller, not a rejection of the message, hence no sentinel.
var (
	errNoKeyFunc = errors.New("envelope: Opener.Key is nil")
	errNoWindow  = errors.New("envelope: Opener.Window is nil")
)

// Open verifies wire and returns its meta and payload. The checks run in
// this order, each failing with its own sentinel error:
//
//  1. size: len(wire) <= MaxSize (ErrTooLarge)
//  2. shape: one strict v2 envelope, seq from 1 to MaxSeq (ErrMalformed)
//  3. signer: Key knows meta.signer (ErrUnknownSigner)
//  4. algorithm: meta.alg is the algorithm of that key (ErrAlgMismatch)
//  5. audience: Self, or AudienceAny if AllowAnyAudience (ErrAudience)
//  6. direction: Direction (ErrDirection)
//  7. session: Session (ErrSession)
//  8. time: |Now − meta.ts| <= Skew (ErrTooOld, ErrFromFuture)
//  9. seq: not already accepted in this session, nor below the window
//     (ErrReplay); advisory, to spare a replay the signature check
//  10. signature (ErrBadSignature)
//  11. record the seq, atomically with a second replay check (ErrReplay)
//  12. payload: strict JSON (ErrPayload); the seq stays recorded
//
// Cheap checks come first so that junk costs no signature verification, and
// the seq is recorded only once the signature holds, so a forgery can
// neither slide the window nor burn a genuine message's seq.
func (o *Opener) Open(wire []byte) (Opened, error) {
	if o.Key == nil {
		return Opened{}, errNoKeyFunc
	}
	if o.Window == nil {
		return Opened{}, errNoWindow
	}
	max := o.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	if len(wire) > max {
		return Opened{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(wire), max)
	}
	var p parsed
	if err := parseShape(wire, &p); err != nil {
		return Opened{}, err
	}
	m := &p.meta

	pub, err := o.Key(m.Signer)
	if err != nil {
		return Opened{}, fmt.Errorf("envelope: signer %s: %w", quoteString(m.Signer), err)
	}
	if pub == nil {
		return Opened{}, fmt.Errorf("%w: signer %s", ErrUnknownSigner, quoteString(m.Signer))
	}
	alg, err := keys.Alg(pub)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: key of signer %s: %w", ErrAlgMismatch, quoteString(m.Signer), err)
	}
	if m.Alg != alg {
		return Opened{}, fmt.Errorf("%w: alg %s, the signer's key is %s", ErrAlgMismatch, quoteString(m.Alg), alg)
	}

	if m.Audience != o.Self && !(o.AllowAnyAudience && m.Audience == AudienceAny) {
		return Opened{}, fmt.Errorf("%w: audience %s, want %q", ErrAudience, quoteString(m.Audience), o.Self)
	}
	if m.Direction != o.Direction {
		return Opened{}, fmt.Errorf("%w: direction %s, want %q", ErrDirection, quoteString(string(m.Direction)), o.Direction)
	}
	if m.Session != o.Session {
		return Opened{}, fmt.Errorf("%w: session %s", ErrSession, quoteString(m.Session))
	}

	skew := o.Skew
	if skew <= 0 {
		skew = DefaultSkew
	}
	skewMs := skew.Milliseconds()
	var nowT time.Time
	if o.Now != nil {
		nowT = o.Now()
	} else {
		nowT = time.Now()
	}
	now := nowT.UnixMilli()
	// ts >= 0 and now is a real clock, so neither difference overflows.
	if d := now - m.TS; d > skewMs {
		return Opened{}, fmt.Errorf("%w: ts %d is %d ms before now, skew %v", ErrTooOld, m.TS, d, skew)
	}
	if d := m.TS - now; d > skewMs {
		return Opened{}, fmt.Errorf("%w: ts %d is %d ms after now, skew %v", ErrFromFuture, m.TS, d, skew)
	}

	if err := o.Window.check(m.Seq); err != nil {
		return Opened{}, err
	}

	if err := verify(pub, m, p.payload, p.signature()); err != nil {
		return Opened{}, err
	}

	if err := o.Window.record(m.Seq); err != nil {
		return Opened{}, err
	}

	if p.payloadErr != nil {
		return Opened{}, fmt.Errorf("%w: %v", ErrPayload, p.payloadErr)
	}
	return Opened{Meta: p.meta, Payload: bytes.Clone(p.payload)}, nil
}

// verify checks sig over the signed bytes of m and payload with pub, whose
// algorithm Open has already matched against m.Alg.
func verify(pub crypto.PublicKey, m *Meta, payload, sig []byte) error {
	bp := getBuf()
	defer putBuf(bp)
	*bp = appendSigned((*bp)[:0], m, payload)
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, *bp, sig)
	case *rsa.PublicKey:
		d := sha256.Sum256(*bp)
		ok = rsa.VerifyPSS(k, crypto.SHA256, d[:], sig, pssOptions) == nil
	}
	if !ok {
		return fmt.Errorf("%w: signer %s, alg %s", ErrBadSignature, quoteString(m.Signer), m.Alg)
	}
	return nil
}

// Peek checks the size and the strict shape of wire, exactly as Open does,
// and returns its meta and payload WITHOUT verifying anything else: not the
// signer, not the signature, not the payload's strictness. It is for reading
// what is needed to open the message properly: the cloud reads the public key
// of a registration.register before it knows the device, and the device reads
// the session of the auth.challenge it is about to open. Trust nothing it
// returns until Open has said yes. maxSize of zero or less means
// DefaultMaxSize. The payload is a copy.
func Peek(wire []byte, maxSize int) (Meta, json.RawMessage, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(wire) > maxSize {
		return Meta{}, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(wire), maxSize)
	}
	var p parsed
	if err := parseShape(wire, &p); err != nil {
		return Meta{}, nil, err
	}
	return p.meta, bytes.Clone(p.payload), nil
}
