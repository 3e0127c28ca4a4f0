package jsonrpc

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Strict decoding.
//
// encoding/json matches member names case-insensitively, lets the last of
// two duplicated members win and, unless told otherwise, ignores unknown
// members: {"hostname":"a","Hostname":"b"} decodes to "b". The protocol
// promises exact keys, so DecodeParams first walks the JSON alongside the
// Go type it is decoded into and refuses every object member that is not
// exactly the name of a field, and every duplicated member, before handing
// the bytes to json.Unmarshal. Once every key is an exact field name,
// encoding/json's own matching (exact match first) picks the same field,
// so the walk only has to say yes or no; the values are decoded by
// encoding/json alone.

// Bounds on what an error message repeats of the peer's input.
const (
	maxQuotedKey = 40  // of a member name or a value
	maxDetail    = 120 // of another error's text
)

// DecodeParams decodes the params of a request into v, which must be a
// non-nil pointer, strictly:
//
//   - every member of an object decoded into a struct is exactly the name
//     of one of its fields, case included: the name in its json tag, or
//     the Go field name when the tag gives none. Fields tagged `json:"-"`
//     take no member, and fields promoted from embedded structs are found
//     as encoding/json finds them;
//   - no object holds the same member twice (compared after unescaping, and
//     for a map with integer or UnmarshalText keys after conversion),
//     whatever it is decoded into: a struct, a map (which takes any member
//     names) or an empty interface (checked as encoding/json decodes into
//     a nil one: a pointer already stored in an interface is not followed);
//   - nested structs, maps, slices, arrays and pointers are checked the
//     same way. A json.RawMessage, and any type with its own UnmarshalJSON
//     or UnmarshalText, is decoded as encoding/json does and not looked
//     into;
//   - params is exactly one JSON value in UTF-8.
//
// Omitted params (empty, or null) leave v unchanged. An array (positional
// params) is refused unless v points to a slice, an array, an interface or
// a type with its own UnmarshalJSON.
//
// The errors are *Error with CodeInvalidParams and a message naming the
// offending member, e.g. `Invalid params: unknown field "Hostname"` (quoting
// at most 40 bytes of it), safe to send back as is; an *Error returned by
// an UnmarshalJSON method is returned unchanged. Only a v that is not a
// non-nil pointer gives another error: a bug in the caller, not in the
// params. A refused member or invalid JSON leaves v untouched; a value of
// the wrong type may leave it partly filled, as with encoding/json.
func DecodeParams(params json.RawMessage, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	return decodeParams(params, v, acceptsArray(rv.Type().Elem()))
}

// DecodeStrict decodes the JSON value data into v (a non-nil pointer) with
// the rules of DecodeParams, for JSON that is not the params of a request:
// a json.RawMessage member that a handler decodes later, or a payload read
// from the device-local bus. Unlike DecodeParams it takes no position on
// arrays, and empty data is an error. Its errors are those of
// DecodeParams, so a handler can return them as they are.
func DecodeStrict(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	return decodeStrict(data, v, rv.Type().Elem())
}

// decodeParams is DecodeParams with the positional rule given.
func decodeParams(params json.RawMessage, v any, positional bool) error {
	params = trimSpace(params)
	if len(params) == 0 || string(params) == "null" {
		return nil
	}
	if params[0] == '[' && !positional {
		return invalidParams("positional params are not supported, use an object")
	}
	return decodeStrict(params, v, reflect.TypeOf(v).Elem())
}

// decodeStrict checks data against t, the type v points to, and decodes it.
func decodeStrict(data []byte, v any, t reflect.Type) error {
	if err := syntaxError(data); err != nil {
		return err
	}
	if err := checkValue(trimSpace(data), t); err != nil {
		return err
	}
	return unmarshalError(json.Unmarshal(data, v))
}

// syntaxError returns nil when data is exactly one JSON value in UTF-8, and
// otherwise an *Error saying what is wrong with it.
func syntaxError(data []byte) *Error {
	if json.Valid(data) {
		if !utf8.Valid(data) {
			// encoding/json would turn invalid bytes into U+FFFD, so two
			// different keys could decode to one.
			return invalidParams("not valid UTF-8")
		}
		return nil
	}
	if len(trimSpace(data)) == 0 {
		return invalidParams("no JSON value")
	}
	// Only on the error path: find out whether the first value is fine and
	// something follows it, or the value itself is broken.
	dec := json.NewDecoder(bytes.NewReader(data))
	var first json.RawMessage
	if err := dec.Decode(&first); err == nil {
		return invalidParams("trailing data after the JSON value")
	} else if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return invalidParams("invalid JSON: " + se.Error())
	} else if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalidParams("invalid JSON: unexpected end of JSON input")
	}
	return invalidParams("invalid JSON")
}

// unmarshalError turns an error from json.Unmarshal into the *Error to send.
func unmarshalError(err error) error {
	if err == nil {
		return nil
	}
	if rpcErr, ok := errors.AsType[*Error](err); ok && rpcErr != nil {
		return rpcErr
	}
	if _, ok := errors.AsType[*json.InvalidUnmarshalError](err); ok {
		return err // the caller's bug, not the params'
	}
	if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		want := jsonTypeName(typeErr.Type)
		// Value is a JSON type ("string") or, for a number out of range,
		// "number " and the number as sent.
		got, _ := truncate(typeErr.Value, maxQuotedKey)
		if typeErr.Field == "" {
			return invalidParams(fmt.Sprintf("expected %s, got %s", want, got))
		}
		return invalidParams(fmt.Sprintf("field %s: expected %s, got %s", quoteKey(typeErr.Field), want, got))
	}
	// A custom UnmarshalJSON's own complaint, ...: about the caller's input,
	// so safe to send, but it may quote all of it (time.Time's does).
	detail, _ := truncate(strings.TrimPrefix(err.Error(), "json: "), maxDetail)
	return invalidParams(detail)
}

func invalidParams(detail string) *Error {
	return &Error{Code: CodeInvalidParams, Message: codeMessages[CodeInvalidParams] + ": " + detail}
}

// quoteKey quotes at most maxQuotedKey bytes of key, marking a cut with
// "...", so that an error message stays short whatever the peer sent.
func quoteKey(key string) string {
	s, cut := truncate(key, maxQuotedKey)
	if cut {
		return strconv.Quote(s[:len(s)-3]) + "..."
	}
	return strconv.Quote(s)
}

// truncate cuts s to at most n bytes at a character boundary and appends
// "..." when it cut; it reports whether it did.
func truncate(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "...", true
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// decodesItself reports whether encoding/json hands a value of type t (or
// of a pointer to it) to the type's own UnmarshalJSON or UnmarshalText.
func decodesItself(t reflect.Type) bool {
	if t.Implements(unmarshalerType) || t.Implements(textUnmarshalerType) {
		return true
	}
	pt := reflect.PointerTo(t)
	return pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType)
}

// checkValue checks the valid, trimmed JSON value b that encoding/json
// decodes into a t. It follows b, not t, so recursive types end where the
// JSON does, and the depth is bounded by json.Valid's nesting limit.
func checkValue(b []byte, t reflect.Type) error {
	for {
		if decodesItself(t) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	switch b[0] {
	case '{':
		switch t.Kind() {
		case reflect.Struct:
			return checkStruct(b, t)
		case reflect.Map:
			return checkMap(b, t)
		case reflect.Interface:
			if t.NumMethod() == 0 {
				return checkAny(b)
			}
		}
	case '[':
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			var err error
			forEachElement(b, func(e []byte) bool {
				err = checkValue(e, t.Elem())
				return err == nil
			})
			return err
		case reflect.Interface:
			if t.NumMethod() == 0 {
				return checkAny(b)
			}
		}
	}
	// A scalar, or a JSON value of the wrong type for t: json.Unmarshal
	// reports the mismatch.
	return nil
}

// checkStruct checks the members of the object obj decoded into the
// struct type t.
func checkStruct(obj []byte, t reflect.Type) error {
	fs := fieldsOf(t)
	var seenSmall uint64 // seen fields, when there are at most 64
	var seenLarge []bool
	if len(fs.list) > 64 {
		seenLarge = make([]bool, len(fs.list))
	}
	var err error
	forEachMember(obj, func(k, v []byte) bool {
		key := unquote(k)
		i, ok := fs.byName[string(key)]
		if !ok {
			err = invalidParams("unknown field " + quoteKey(string(key)))
			return false
		}
		if seenLarge != nil {
			ok = seenLarge[i]
			seenLarge[i] = true
		} else {
			ok = seenSmall&(1<<i) != 0
			seenSmall |= 1 << i
		}
		if ok {
			err = invalidParams("duplicate field " + quoteKey(string(key)))
			return false
		}
		err = checkValue(v, fs.list[i].typ)
		return err == nil
	})
	return err
}

// checkMap checks the object obj decoded into the map type t: any member
// name, but each once. Keys that encoding/json converts (to an integer, or
// through UnmarshalText) are compared once converted, so that "1" and "01"
// are one key of a map[int]T, as they would be after decoding.
func checkMap(obj []byte, t reflect.Type) error {
	kt, elem := t.Key(), t.Elem()
	if reflect.PointerTo(kt).Implements(textUnmarshalerType) || kt.Kind() != reflect.String {
		return checkConvertedKeys(obj, kt, elem)
	}
	var seen keySet
	var err error
	forEachMember(obj, func(k, v []byte) bool {
		if err = seen.add(k); err == nil {
			err = checkValue(v, elem)
		}
		return err == nil
	})
	return err
}

// checkConvertedKeys is checkMap for keys that are converted. A key that
// does not convert is left for json.Unmarshal to report.
func checkConvertedKeys(obj []byte, kt, elem reflect.Type) error {
	seen := make(map[any]struct{})
	var err error
	forEachMember(obj, func(k, v []byte) bool {
		key := unquote(k)
		if kv, ok := convertKey(key, kt); ok {
			if _, dup := seen[kv]; dup {
				err = invalidParams("duplicate field " + quoteKey(string(key)))
				return false
			}
			seen[kv] = struct{}{}
		}
		err = checkValue(v, elem)
		return err == nil
	})
	return err
}

// convertKey converts a member name to a map key of type kt the way
// encoding/json does.
func convertKey(key []byte, kt reflect.Type) (any, bool) {
	if reflect.PointerTo(kt).Implements(textUnmarshalerType) {
		kv := reflect.New(kt)
		if err := kv.Interface().(encoding.TextUnmarshaler).UnmarshalText(key); err != nil {
			return nil, false
		}
		if !kv.Elem().Comparable() {
			return nil, false
		}
		return kv.Elem().Interface(), true
	}
	switch kt.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(string(key), 10, 64)
		return n, err == nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(string(key), 10, 64)
		return n, err == nil
	}
	return nil, false
}

// checkAny checks a JSON value decoded into an empty interface: any member
// names, but no duplicates at any depth.
func checkAny(b []byte) error {
	var err error
	switch b[0] {
	case '{':
		var seen keySet
		forEachMember(b, func(k, v []byte) bool {
			if err = seen.add(k); err == nil {
				err = checkAny(v)
			}
			return err == nil
		})
	case '[':
		forEachElement(b, func(e []byte) bool {
			err = checkAny(e)
			return err == nil
		})
	}
	return err
}

// keySet holds the member names of one object seen so far. The first few
// are compared one by one, without allocating: most objects are small.
type keySet struct {
	small [16][]byte
	n     int
	large map[string]struct{}
}

// add records the quoted key k, refusing it when it is there already.
func (s *keySet) add(k []byte) error {
	key := unquote(k)
	dup := false
	switch {
	case s.large != nil:
		_, dup = s.large[string(key)]
		s.large[string(key)] = struct{}{}
	case s.n < len(s.small):
		for _, seen := range s.small[:s.n] {
			if bytes.Equal(seen, key) {
				dup = true
				break
			}
		}
		s.small[s.n] = key
		s.n++
	default:
		s.large = make(map[string]struct{}, 2*len(s.small))
		for _, seen := range s.small {
			s.large[string(seen)] = struct{}{}
		}
		_, dup = s.large[string(key)]
		s.large[string(key)] = struct{}{}
	}
	if dup {
		return invalidParams("duplicate field " + quoteKey(string(key)))
	}
	return nil
}

// structFields are the members a struct type takes, as encoding/json
// decodes them.
type structFields struct {
	list   []field
	byName map[string]int // exact name -> index in list
}

type field struct {
	name  string
	typ   reflect.Type
	index []int // the path of field indices from the outer struct
	tag   bool  // the name comes from a json tag
}

var fieldCache sync.Map // reflect.Type -> *structFields

// fieldsOf returns the fields of the struct type t, from the cache.
func fieldsOf(t reflect.Type) *structFields {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*structFields)
	}
	fs, _ := fieldCache.LoadOrStore(t, typeFields(t))
	return fs.(*structFields)
}

// typeFields lists the fields encoding/json decodes into for the struct
// type t. It follows the rules of encoding/json's own typeFields: a
// breadth-first walk through embedded structs in which a name at a
// shallower depth hides deeper ones, a tagged name beats an untagged one
// at the same depth, and two equally good fields of one name hide each
// other.
func typeFields(t reflect.Type) *structFields {
	var current []field
	next := []field{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	var fields []field

	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := range f.typ.NumField() {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue // an unexported embedded non-struct has no fields to offer
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validTagName(name) {
					name = ""
				}
				index := append(slices.Clip(f.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					tagged := name != ""
					if name == "" {
						name = sf.Name
					}
					fields = append(fields, field{name: name, typ: sf.Type, index: index, tag: tagged})
					if count[f.typ] > 1 {
						// The struct holding this field is embedded more
						// than once at this depth: add the field twice so
						// that the two hide each other below.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, field{name: ft.Name(), index: index, typ: ft})
				}
			}
		}
	}

	slices.SortFunc(fields, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := len(a.index) - len(b.index); c != 0 {
			return c
		}
		if a.tag != b.tag {
			if a.tag {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	fs := &structFields{byName: make(map[string]int)}
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		group := fields[i:j]
		i = j
		// The group is sorted by depth, then tagged first: the first field
		// wins unless the second is just as good.
		if len(group) > 1 && len(group[0].index) == len(group[1].index) && group[0].tag == group[1].tag {
			continue
		}
		fs.byName[group[0].name] = len(fs.list)
		fs.list = append(fs.list, group[0])
	}
	return fs
}

// validTagName reports whether encoding/json accepts name from a json tag;
// it uses the Go field name instead of one it does not.
func validTagName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
			// Backslash and quote chars are reserved, but otherwise any
			// punctuation chars are allowed in a tag name.
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
