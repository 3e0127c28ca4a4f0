package jsonrpc

import (
	"bytes"
	"encoding/json"
)

// A tiny walker over JSON that encoding/json has already validated. It lets
// the package look at the top-level members of a message without decoding
// it: member names match exactly (encoding/json would match them
// case-insensitively), duplicates can be seen, and values keep their exact
// bytes. Every function here assumes valid input; callers check json.Valid
// once on the whole payload first.

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// trimSpace removes JSON whitespace around b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && !isSpace(b[j]) {
		j++
	}
	return j
}

// forEachMember calls fn with the quoted name and the value of each member
// of the object obj, in order, until fn returns false.
func forEachMember(obj []byte, fn func(key, val []byte) bool) {
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		ke := stringEnd(obj, i)
		key := obj[i:ke]
		i = skipSpace(obj, ke)
		i = skipSpace(obj, i+1) // past ':'
		ve := valueEnd(obj, i)
		if !fn(key, obj[i:ve]) {
			return
		}
		i = skipSpace(obj, ve)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
}

// forEachElement calls fn with each element of the array arr, in order,
// until fn returns false.
func forEachElement(arr []byte, fn func(elem []byte) bool) {
	i := skipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		ve := valueEnd(arr, i)
		if !fn(arr[i:ve]) {
			return
		}
		i = skipSpace(arr, ve)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
}

// unquote returns the content of the JSON string token quoted. Strings
// without escapes (member names, in practice) are returned without copying;
// compare them with a string(...) conversion, which does not allocate.
func unquote(quoted []byte) []byte {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	var s string
	_ = json.Unmarshal(quoted, &s) // valid by construction
	return []byte(s)
}

// isString reports whether the valid JSON value v is a string.
func isString(v []byte) bool { return v[0] == '"' }

// isNumber reports whether the valid JSON value v is a number.
func isNumber(v []byte) bool { return v[0] == '-' || (v[0] >= '0' && v[0] <= '9') }
