package envelope

import (
	"encoding/base64"
	"fmt"
)

// b64 is the encoding of sig: base64url without padding, strict so
// that the unused low bits of the last character must be zero. Without that,
// one signature would have several spellings and a flipped bit could go
// unnoticed. (The decoder still skips CR and LF; meta strings never contain
// control characters, so they cannot get that far.)
var b64 = base64.RawURLEncoding.Strict()

// maxSigSize is the longest signature accepted, in bytes: RSA-16384.
const maxSigSize = 2048

// inlineSig is the longest signature decoded without an allocation (RSA-4096).
const inlineSig = 512

// Bits of parsed.seen, one per meta field.
const (
	fieldV = 1 << iota
	fieldSigner
	fieldAudience
	fieldDirection
	fieldSession
	fieldSeq
	fieldTS
	fieldAlg
	fieldSig
	allFields = 1<<iota - 1
)

// metaFields lists the meta keys in the order Seal writes them, which is also
// the order of the bits above.
var metaFields = [...]string{"v", "signer", "audience", "direction", "session", "seq", "ts", "alg", "sig"}

// metaString is one string field of meta while it is being scanned: either a
// span of the wire (no escapes, the common case) or its decoded bytes.
type metaString struct {
	start, end int    // span of the content between the quotes
	decoded    []byte // non-nil if the string had escapes
}

// parsed is what the shape check extracts from a wire.
type parsed struct {
	meta Meta
	// The decoded signature is sigArr[:sigLen], or sigHeap when it is longer
	// than inlineSig. (An array rather than a slice into the caller's stack,
	// which escape analysis would move to the heap.)
	sigArr  [inlineSig]byte
	sigLen  int
	sigHeap []byte
	payload []byte // the payload's bytes, a sub-slice of the wire
	// payloadErr is the strict parse's verdict on the payload, reported only
	// once the signature holds (the payload is parsed during the shape scan,
	// to read it once, but judged in protocol order).
	payloadErr error
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// signature returns the decoded signature.
func (p *parsed) signature() []byte {
	if p.sigHeap != nil {
		return p.sigHeap
	}
	return p.sigArr[:p.sigLen]
}

// parseShape checks that wire is one strict v2 envelope and fills p.
// Every error wraps ErrMalformed.
func parseShape(wire []byte, p *parsed) error {
	b := wire
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return malformed("envelope is not a JSON object")
	}
	i = skipWS(b, i+1)
	var haveMeta, havePayload bool
	if i < len(b) && b[i] == '}' {
		return malformed("missing meta")
	}
	for {
		key, end, err := readKey(b, i)
		if err != nil {
			return malformed("envelope key: %v", err)
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return malformed("missing ':' after key at offset %d", i)
		}
		i = skipWS(b, i+1)
		switch string(key) {
		case "meta":
			if haveMeta {
				return malformed("duplicate key \"meta\"")
			}
			haveMeta = true
			if i, err = parseMeta(b, i, p); err != nil {
				return err
			}
		case "payload":
			if havePayload {
				return malformed("duplicate key \"payload\"")
			}
			havePayload = true
			if i, err = locatePayload(b, i, p); err != nil {
				return err
			}
		default:
			return malformed("unknown envelope key %s (keys are case-sensitive)", quote(key))
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return malformed("unterminated envelope")
		}
		if b[i] == '}' {
			i++
			break
		}
		if b[i] != ',' {
			return malformed("unexpected %s in envelope at offset %d", quoteByte(b[i]), i)
		}
		i = skipWS(b, i+1)
	}
	if i = skipWS(b, i); i != len(b) {
		return malformed("trailing data after the envelope at offset %d", i)
	}
	if !haveMeta {
		return malformed("missing meta")
	}
	if !havePayload {
		return malformed("missing payload")
	}
	return nil
}

// readKey reads the object key at b[i] and returns it decoded, and the index
// past its closing quote.
func readKey(b []byte, i int) ([]byte, int, error) {
	if i >= len(b) || b[i] != '"' {
		if i >= len(b) {
			return nil, 0, errEOF
		}
		return nil, 0, fmt.Errorf("unexpected %s, want a key, at offset %d", quoteByte(b[i]), i)
	}
	end, esc, err := scanString(b, i)
	if err != nil {
		return nil, 0, fmt.Errorf("%w at offset %d", err, i)
	}
	key := b[i+1 : end-1]
	if esc {
		key = unescape(key)
	}
	return key, end, nil
}

// locatePayload finds the payload value at b[i], parsing it strictly on the
// way; see parsed.payloadErr and skipLenient.
func locatePayload(b []byte, i int, p *parsed) (int, error) {
	end, err := validateValueAt(b, i)
	if err == nil {
		j := skipWS(b, end)
		if j < len(b) && (b[j] == ',' || b[j] == '}') {
			p.payload, p.payloadErr = b[i:end], nil
			return end, nil
		}
	}
	lend, ok := skipLenient(b, i)
	if !ok {
		return 0, malformed("payload value at offset %d has no end", i)
	}
	if err == nil {
		err = fmt.Errorf("data after the value at offset %d", end-i)
	}
	p.payload, p.payloadErr = b[i:lend], err
	return lend, nil
}

// parseMeta parses the meta object at b[i] into p and returns the index past
// it. Keys may come in any order, each exactly once.
func parseMeta(b []byte, i int, p *parsed) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return 0, malformed("meta is not an object")
	}
	start := i
	var strs [len(metaFields)]metaString
	seen := 0
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return 0, malformed("meta is empty")
	}
	for {
		key, end, err := readKey(b, i)
		if err != nil {
			return 0, malformed("meta key: %v", err)
		}
		f := -1
		for n, name := range metaFields {
			if string(key) == name {
				f = n
				break
			}
		}
		if f < 0 {
			return 0, malformed("unknown meta key %s (keys are case-sensitive)", quote(key))
		}
		if seen&(1<<f) != 0 {
			return 0, malformed("duplicate meta key %q", metaFields[f])
		}
		seen |= 1 << f
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, malformed("missing ':' after meta key %q", metaFields[f])
		}
		i = skipWS(b, i+1)
		switch f {
		case 0, 5, 6: // v, seq, ts: plain non-negative integers
			if i >= len(b) || b[i] < '0' || b[i] > '9' {
				if i < len(b) && b[i] == '-' {
					return 0, malformed("meta.%s is negative", metaFields[f])
				}
				return 0, malformed("meta.%s is not an integer", metaFields[f])
			}
			nend, plain, err := scanNumber(b, i)
			if err != nil || !plain {
				return 0, malformed("meta.%s is not an integer", metaFields[f])
			}
			// A leading zero ends the number at the zero (scanNumber), so
			// "07" fails below as an unexpected '7'.
			n, ok := parseDigits(b[i:nend])
			switch {
			case !ok:
				return 0, malformed("meta.%s is out of range", metaFields[f])
			case f == 0:
				if n != Version {
					return 0, malformed("meta.v is %d, want %d", n, Version)
				}
				p.meta.V = Version
			case f == 5:
				if n == 0 || n > MaxSeq {
					return 0, malformed("meta.seq is %d, want 1 to %d", n, MaxSeq)
				}
				p.meta.Seq = n
			default:
				if n > 1<<63-1 {
					return 0, malformed("meta.ts is out of range")
				}
				p.meta.TS = int64(n)
			}
			i = nend
		default:
			if i >= len(b) || b[i] != '"' {
				return 0, malformed("meta.%s is not a string", metaFields[f])
			}
			send, esc, err := scanString(b, i)
			if err != nil {
				return 0, malformed("meta.%s: %v", metaFields[f], err)
			}
			ms := metaString{start: i + 1, end: send - 1}
			v := b[ms.start:ms.end]
			if esc {
				ms.decoded = unescape(v)
				v = ms.decoded
			}
			if err := checkMetaString(v); err != nil {
				return 0, malformed("meta.%s: %v", metaFields[f], err)
			}
			strs[f] = ms
			i = send
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, malformed("unterminated meta")
		}
		if b[i] == '}' {
			i++
			break
		}
		if b[i] != ',' {
			return 0, malformed("unexpected %s in meta at offset %d", quoteByte(b[i]), i)
		}
		i = skipWS(b, i+1)
	}
	if seen != allFields {
		for f, name := range metaFields {
			if seen&(1<<f) == 0 {
				return 0, malformed("missing meta.%s", name)
			}
		}
	}
	// One allocation for every unescaped field: they become substrings of a
	// copy of the meta object.
	all := string(b[start:i])
	str := func(f int) string {
		if strs[f].decoded != nil {
			return string(strs[f].decoded)
		}
		return all[strs[f].start-start : strs[f].end-start]
	}
	m := &p.meta
	m.Signer = str(1)
	m.Audience = str(2)
	m.Direction = Direction(str(3))
	m.Session = str(4)
	m.Alg = str(7)
	m.Sig = str(8)

	raw := func(f int) []byte {
		if strs[f].decoded != nil {
			return strs[f].decoded
		}
		return b[strs[f].start:strs[f].end]
	}
	n := b64.DecodedLen(len(m.Sig))
	if n > maxSigSize {
		return 0, malformed("meta.sig is longer than %d bytes", maxSigSize)
	}
	dst := p.sigArr[:]
	if n > inlineSig {
		p.sigHeap = make([]byte, n)
		dst = p.sigHeap
	}
	n, err := b64.Decode(dst, raw(8))
	if err != nil {
		return 0, malformed("meta.sig is not unpadded base64url")
	}
	p.sigLen = n
	if p.sigHeap != nil {
		p.sigHeap = p.sigHeap[:n]
	}
	return i, nil
}

// parseDigits returns the value of the decimal digits b, and false if it
// does not fit in a uint64.
func parseDigits(b []byte) (uint64, bool) {
	var n uint64
	for _, c := range b {
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// checkMetaString enforces the rules for meta strings beyond JSON: non-empty
// and no control characters, which have no place in identifiers and would let
// a peer forge lines in logs. (UTF-8 validity is scanString's job, and
// unescape only produces valid UTF-8.)
func checkMetaString(v []byte) error {
	if len(v) == 0 {
		return fmt.Errorf("empty")
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return errControl
		}
	}
	return nil
}
