package store

import (
	"strings"
	"unicode/utf8"
)

// storable reports whether every s could be stored in a text column:
// PostgreSQL's text holds valid UTF-8 without NUL bytes. A filter or id
// that is not storable matches no row, and sending it would be a database
// error ("invalid byte sequence for encoding UTF8"), which the caller
// would answer as an internal error; so the lookups and lists answer
// nothing found for it without asking.
func storable(ss ...string) bool {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
