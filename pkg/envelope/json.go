package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
)

// This file holds the JSON grammar shared by the meta scanner and the strict
// payload parser. It is hand-written rather than built on encoding/json for two
// reasons: encoding/json matches keys case-insensitively, accepts duplicate
// keys and silently replaces invalid UTF-8 and lone surrogates (each one a way
// for two parsers to read one signed message differently), and Open has to be
// cheap next to the signature check it guards (see docs/benchmarks.md).

// maxDepth bounds the nesting of the payload, as encoding/json does, so that
// anything this package accepts encoding/json can decode.
const maxDepth = 10000

// linearKeys is the number of keys an object may have before duplicate
// detection switches from a linear scan to a map: cheaper for the small
// objects JSON-RPC is made of, still linear time for large ones.
const linearKeys = 16

var (
	errUnterminated = errors.New("unterminated string")
	errBadEscape    = errors.New("invalid escape")
	errSurrogate    = errors.New("lone surrogate escape")
	errControl      = errors.New("control character in string")
	errUTF8         = errors.New("invalid UTF-8")
	errEOF          = errors.New("unexpected end of input")
)

// isWS reports whether c is JSON insignificant whitespace.
func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipWS returns the index of the first non-whitespace byte of b at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// scanString checks the JSON string starting at b[i] (a '"') and returns the
// index just past its closing quote, and whether it contains escapes.
// It rejects raw control characters, invalid UTF-8 and lone surrogate escapes:
// two different strings of that kind decode to the same U+FFFD in most
// parsers, which would defeat duplicate-key detection.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for i < len(b) {
		// Fast path: runs of printable ASCII other than '"' and '\\'.
		for i < len(b) && plainASCII[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, escaped, errUnterminated
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return 0, escaped, errBadEscape
				}
				i += 6
				if r >= 0xD800 && r <= 0xDFFF {
					// Must be a high surrogate followed by an escaped low one.
					if r >= 0xDC00 || i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return 0, escaped, errSurrogate
					}
					r2, ok := hex4(b, i+2)
					if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
						return 0, escaped, errSurrogate
					}
					i += 6
				}
			default:
				return 0, escaped, errBadEscape
			}
		case c < 0x20:
			return 0, escaped, errControl
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, escaped, errUTF8
			}
			i += size
		}
	}
	return 0, escaped, errUnterminated
}

// plainASCII marks the bytes a string may hold as is, without a closer look.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// unescape decodes the contents (between the quotes) of a string that
// scanString accepted and reported as escaped.
func unescape(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			if r >= 0xD800 && r <= 0xDBFF {
				r2, _ := hex4(raw, i+8)
				r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
				i += 6
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return out
}

// scanNumber checks the JSON number starting at b[i] and returns the index
// just past it. It reports whether the number is a plain integer (no sign,
// fraction or exponent).
func scanNumber(b []byte, i int) (end int, plain bool, err error) {
	start := i
	plain = true
	if i < len(b) && b[i] == '-' {
		plain = false
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return 0, false, fmt.Errorf("invalid number at offset %d", start)
	}
	if i < len(b) && b[i] == '.' {
		plain = false
		i++
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false, fmt.Errorf("invalid number at offset %d", start)
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		plain = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false, fmt.Errorf("invalid number at offset %d", start)
		}
	}
	return i, plain, nil
}

// strictParser validates one JSON value strictly. keys holds the keys of the
// objects currently open (innermost last) for duplicate detection, as offsets
// so that it holds no pointers (see keysPool).
type strictParser struct {
	b    []byte
	keys []keyRef
	dec  []byte // decoded escaped keys, referenced by keyRef.esc entries
}

// keyRef locates one key: b[start:end], or dec[start:end] if esc.
type keyRef struct {
	start, end int
	esc        bool
}

func (p *strictParser) key(k keyRef) []byte {
	if k.esc {
		return p.dec[k.start:k.end]
	}
	return p.b[k.start:k.end]
}

// validateStrict reports whether b is exactly one strict JSON value (no
// surrounding whitespace: the payload's bytes are what is signed).
func validateStrict(b []byte) error {
	end, err := validateValueAt(b, 0)
	if err != nil {
		return err
	}
	if end != len(b) {
		return fmt.Errorf("data after the value at offset %d", end)
	}
	return nil
}

// validateValueAt parses the value at b[i] strictly and returns its end.
func validateValueAt(b []byte, i int) (int, error) {
	kp := keysPool.Get().(*[]keyRef)
	p := strictParser{b: b, keys: (*kp)[:0]}
	end, err := p.value(i, 0)
	if cap(p.keys) <= 1024 {
		*kp = p.keys[:0]
		keysPool.Put(kp)
	}
	return end, err
}

// keysPool recycles strictParser.keys. (A stack array would do, but escape
// analysis moves it to the heap: the parser is recursive.) keyRef holds no
// pointers, so a pooled slice keeps no wire alive.
var keysPool = sync.Pool{New: func() any { k := make([]keyRef, 0, 32); return &k }}

// value parses the value at b[i] and returns the index just past it.
func (p *strictParser) value(i, depth int) (int, error) {
	b := p.b
	if i >= len(b) {
		return 0, errEOF
	}
	switch c := b[i]; {
	case c == '{':
		return p.object(i, depth+1)
	case c == '[':
		return p.array(i, depth+1)
	case c == '"':
		end, _, err := scanString(b, i)
		if err != nil {
			return 0, fmt.Errorf("%w at offset %d", err, i)
		}
		return end, nil
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || ('0' <= c && c <= '9'):
		end, _, err := scanNumber(b, i)
		return end, err
	default:
		return 0, fmt.Errorf("unexpected %s at offset %d", quoteByte(c), i)
	}
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, fmt.Errorf("invalid literal at offset %d", i)
	}
	return i + len(lit), nil
}

func (p *strictParser) array(i, depth int) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("nesting deeper than %d at offset %d", maxDepth, i)
	}
	b := p.b
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = p.value(i, depth); err != nil {
			return 0, err
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, errEOF
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, fmt.Errorf("unexpected %s in array at offset %d", quoteByte(b[i]), i)
		}
	}
}

func (p *strictParser) object(i, depth int) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("nesting deeper than %d at offset %d", maxDepth, i)
	}
	b := p.b
	base := len(p.keys)
	defer func() { p.keys = p.keys[:base] }()
	var set map[string]struct{} // replaces keys[base:] past linearKeys
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) {
			return 0, errEOF
		}
		if b[i] != '"' {
			return 0, fmt.Errorf("unexpected %s, want a key, at offset %d", quoteByte(b[i]), i)
		}
		end, esc, err := scanString(b, i)
		if err != nil {
			return 0, fmt.Errorf("%w at offset %d", err, i)
		}
		k := keyRef{start: i + 1, end: end - 1}
		if esc { // "a" and "\u0061" are the same key
			k = keyRef{start: len(p.dec), esc: true}
			p.dec = append(p.dec, unescape(b[i+1:end-1])...)
			k.end = len(p.dec)
		}
		key := p.key(k)
		if set != nil {
			if _, dup := set[string(key)]; dup {
				return 0, fmt.Errorf("duplicate key %s at offset %d", quote(key), i)
			}
			set[string(key)] = struct{}{}
		} else {
			for _, prev := range p.keys[base:] {
				if bytes.Equal(p.key(prev), key) {
					return 0, fmt.Errorf("duplicate key %s at offset %d", quote(key), i)
				}
			}
			p.keys = append(p.keys, k)
			if len(p.keys)-base == linearKeys {
				set = make(map[string]struct{}, 2*linearKeys)
				for _, prev := range p.keys[base:] {
					set[string(p.key(prev))] = struct{}{}
				}
			}
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, fmt.Errorf("missing ':' after key at offset %d", i)
		}
		if i, err = p.value(skipWS(b, i+1), depth); err != nil {
			return 0, err
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, errEOF
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, fmt.Errorf("unexpected %s in object at offset %d", quoteByte(b[i]), i)
		}
	}
}

// isScalarByte reports whether c can be part of a number or a literal: the
// bytes the lenient scan treats as one scalar token.
func isScalarByte(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
		c == '+' || c == '-' || c == '.'
}

// skipLenient finds the end of the value starting at b[i] without judging
// it: a string runs to the next unescaped quote, an object or array to the
// bracket that brings the nesting count back to zero (kinds are not matched,
// strings are skipped), a scalar is a run of isScalarByte bytes. The shape
// check uses it only when the strict parse failed, so that a signed but broken
// payload is reported as ErrPayload after the signature check, as the
// protocol orders it.
func skipLenient(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipStringLenient(b, i)
	case c == '{' || c == '[':
		n := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := skipStringLenient(b, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				n++
			case '}', ']':
				n--
				if n == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	case isScalarByte(c):
		for i < len(b) && isScalarByte(b[i]) {
			i++
		}
		return i, true
	default:
		return 0, false
	}
}

func skipStringLenient(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// maxQuote is how many bytes of peer-controlled data an error message quotes.
const maxQuote = 40

// quote quotes at most maxQuote bytes of b for an error message.
func quote(b []byte) string {
	if len(b) > maxQuote {
		return fmt.Sprintf("%q...", b[:maxQuote])
	}
	return fmt.Sprintf("%q", b)
}

// quoteString is quote for a string.
func quoteString(s string) string {
	if len(s) > maxQuote {
		return fmt.Sprintf("%q...", s[:maxQuote])
	}
	return fmt.Sprintf("%q", s)
}

func quoteByte(c byte) string {
	return fmt.Sprintf("%q", []byte{c})
}
