package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// validText reports whether s can be stored as PostgreSQL text: valid
// UTF-8 without NUL bytes. Stored names (users' emails, token names) are
// checked with it, so that such input is refused as invalid instead of
// failing in the database as an internal error.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// jsonStorable reports whether the JSON document raw can be stored as
// jsonb: valid UTF-8, and no string in it (key or value) holding U+0000,
// which jsonb refuses ("unsupported Unicode escape sequence"). raw must
// be valid JSON.
func jsonStorable(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
}
