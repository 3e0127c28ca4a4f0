package envelope

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bosunhq/bosun/pkg/keys"
)

// domain starts the signed bytes. It names the format and its version, and
// the NUL ends it, so no other message a Bosun key signs can be mistaken for
// an envelope, nor an envelope of one version for another.
const domain = "bosun-envelope-v2\x00"

// pssOptions are the RSA-PSS parameters of rsa-pss-sha256: SHA-256 for the
// message digest and MGF1, salt as long as the hash. Verification demands
// exactly this salt length rather than auto-detecting it.
var pssOptions = &rsa.PSSOptions{SaltLength: sha256.Size, Hash: crypto.SHA256}

// Sealer signs outgoing envelopes with one key. Its fields may be set
// directly (NewSealer checks them once, Seal on every call); do not change
// them while Seal runs.
type Sealer struct {
	// Signer is the name written to meta.signer: the device id, or the
	// cloud's name.
	Signer string
	// Key signs. Its public key decides meta.alg (see keys.Alg). (RSA-PSS
	// salts come from the crypto library's own generator.)
	Key crypto.Signer
	// Now is the clock for meta.ts. nil means time.Now.
	Now func() time.Time
}

// NewSealer returns a Sealer for signer with key, after checking that the
// key is usable (Ed25519, or RSA of at least 2048 bits) and that signer is a
// valid meta string.
func NewSealer(signer string, key crypto.Signer) (*Sealer, error) {
	s := &Sealer{Signer: signer, Key: key}
	if _, err := s.alg(); err != nil {
		return nil, err
	}
	if err := checkOutgoing(signer); err != nil {
		return nil, fmt.Errorf("%w: signer: %v", ErrMalformed, err)
	}
	return s, nil
}

func (s *Sealer) alg() (string, error) {
	if s.Key == nil {
		return "", errors.New("envelope: Sealer has no key")
	}
	return keys.Alg(s.Key.Public())
}

// Seal wraps payload, which must be exactly one strict JSON value (surrounding
// whitespace is dropped: it would not survive the trip), in an envelope for h
// stamped with the current time, and returns the wire bytes. The caller
// numbers its messages (see Header.Seq) and writes them in seq order.
// It returns an error wrapping ErrPayload for a payload Open would refuse,
// and ErrMalformed for a header that could not be sent, among them a seq of
// 0 or above MaxSeq.
func (s *Sealer) Seal(h Header, payload []byte) ([]byte, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return s.SealAt(h, payload, now())
}

// SealAt is Seal with the timestamp given, for test vectors and tests. With
// an Ed25519 key its output is fully deterministic; an RSA-PSS signature is
// randomised, but its signed bytes are not.
func (s *Sealer) SealAt(h Header, payload []byte, ts time.Time) ([]byte, error) {
	alg, err := s.alg()
	if err != nil {
		return nil, err
	}
	payload = trimWS(payload)
	if err := validateStrict(payload); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	m := Meta{
		V:         Version,
		Signer:    s.Signer,
		Audience:  h.Audience,
		Direction: h.Direction,
		Session:   h.Session,
		Seq:       h.Seq,
		TS:        ts.UnixMilli(),
		Alg:       alg,
	}
	if err := checkHeader(&m); err != nil {
		return nil, err
	}

	bp := getBuf()
	defer putBuf(bp)
	*bp = appendSigned((*bp)[:0], &m, payload)
	sig, err := sign(s.Key, alg, *bp)
	if err != nil {
		return nil, fmt.Errorf("envelope: signing: %w", err)
	}
	m.Sig = b64.EncodeToString(sig)
	return appendWire(make([]byte, 0, len(payload)+len(m.Sig)+256), &m, payload), nil
}

// checkHeader refuses what Open would reject as malformed, so a mistake
// shows up at the sender rather than as a closed connection.
func checkHeader(m *Meta) error {
	for _, f := range []struct{ name, v string }{
		{"signer", m.Signer}, {"audience", m.Audience}, {"session", m.Session},
	} {
		if err := checkOutgoing(f.v); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, f.name, err)
		}
	}
	if m.Direction != DeviceToCloud && m.Direction != CloudToDevice {
		return fmt.Errorf("%w: direction %s", ErrMalformed, quoteString(string(m.Direction)))
	}
	if m.Seq == 0 || m.Seq > MaxSeq {
		return fmt.Errorf("%w: seq %d is outside 1 to %d", ErrMalformed, m.Seq, MaxSeq)
	}
	if m.TS < 0 {
		return fmt.Errorf("%w: timestamp before 1970", ErrMalformed)
	}
	return nil
}

// checkOutgoing is checkMetaString for a string about to be sent, which,
// unlike one just scanned, may not be valid UTF-8 yet.
func checkOutgoing(v string) error {
	if !utf8.ValidString(v) {
		return errUTF8
	}
	return checkMetaString([]byte(v))
}

func sign(key crypto.Signer, alg string, msg []byte) ([]byte, error) {
	switch alg {
	case keys.AlgEd25519:
		// Ed25519 signs the message itself (crypto.Hash(0)): no prehash.
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	case keys.AlgRSAPSS:
		d := sha256.Sum256(msg)
		return key.Sign(rand.Reader, d[:], pssOptions)
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
}

// SignedBytes returns the exact bytes that are signed for meta m and payload:
// the domain tag "bosun-envelope-v2\x00", then signer, audience, direction,
// session, seq (decimal ASCII), ts (decimal ASCII), alg and payload, each as
// a 4-byte big-endian length followed by the bytes. m.V and m.Sig are not
// used.
func SignedBytes(m Meta, payload []byte) []byte {
	return appendSigned(nil, &m, payload)
}

func appendSigned(dst []byte, m *Meta, payload []byte) []byte {
	var seqBuf, tsBuf [20]byte
	seq := strconv.AppendUint(seqBuf[:0], m.Seq, 10)
	ts := strconv.AppendInt(tsBuf[:0], m.TS, 10)
	dst = append(dst, domain...)
	dst = appendField(dst, m.Signer)
	dst = appendField(dst, m.Audience)
	dst = appendField(dst, string(m.Direction))
	dst = appendField(dst, m.Session)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(seq)))
	dst = append(dst, seq...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(ts)))
	dst = append(dst, ts...)
	dst = appendField(dst, m.Alg)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

func appendField(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// appendWire writes the envelope compactly, meta keys in a fixed order and
// strings minimally escaped: one spelling per envelope, so that every byte
// of what Seal produces matters and any change to it is detected.
func appendWire(dst []byte, m *Meta, payload []byte) []byte {
	dst = append(dst, `{"meta":{"v":`...)
	dst = strconv.AppendInt(dst, int64(m.V), 10)
	dst = append(dst, `,"signer":`...)
	dst = appendString(dst, m.Signer)
	dst = append(dst, `,"audience":`...)
	dst = appendString(dst, m.Audience)
	dst = append(dst, `,"direction":`...)
	dst = appendString(dst, string(m.Direction))
	dst = append(dst, `,"session":`...)
	dst = appendString(dst, m.Session)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, m.Seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, m.TS, 10)
	dst = append(dst, `,"alg":`...)
	dst = appendString(dst, m.Alg)
	dst = append(dst, `,"sig":`...)
	dst = appendString(dst, m.Sig)
	dst = append(dst, `},"payload":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// appendString writes s as a JSON string, escaping only '"' and '\\' (meta
// strings hold no control characters; see checkMetaString) and writing
// everything else, non-ASCII included, as is.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func trimWS(b []byte) []byte {
	for len(b) > 0 && isWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// bufPool recycles signed-bytes buffers: they live only until the signature
// is made or checked, and are about as large as the payload.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooled keeps the rare huge buffer out of the pool.
const maxPooled = 64 << 10

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooled {
		bufPool.Put(b)
	}
}
