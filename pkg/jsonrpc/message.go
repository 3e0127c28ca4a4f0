package jsonrpc

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// validJSON reports whether msg is one JSON value in UTF-8. encoding/json
// alone lets invalid UTF-8 through inside strings, and an id echoed from
// such a string would make the reply invalid too.
func validJSON(msg []byte) bool { return json.Valid(msg) && utf8.Valid(msg) }

// rawRequest is a validated request whose members still point into the
// payload it came from.
type rawRequest struct {
	id     []byte // nil: notification
	method []byte // unquoted
	params []byte // nil: absent
}

// parseRequest validates the request object b (valid JSON, trimmed). On
// error the returned rawRequest holds the id when it could be determined, so
// the error reply can carry it.
func parseRequest(b []byte) (Request, *Error) {
	r, rerr := parseRaw(b)
	req := Request{JSONRPC: Version, ID: bytes.Clone(r.id)}
	if rerr == nil {
		req.Method = string(r.method)
		req.Params = bytes.Clone(r.params)
	}
	return req, rerr
}

// parseRaw is parseRequest without copying anything.
func parseRaw(b []byte) (rawRequest, *Error) {
	var r rawRequest
	if b[0] != '{' {
		return r, stdError(CodeInvalidRequest)
	}
	// Duplicated members would let two parsers disagree on what was asked:
	// they make the request invalid.
	var version, method, params, id []byte
	var dupID, dupOther bool
	forEachMember(b, func(k, v []byte) bool {
		var slot *[]byte
		switch string(unquote(k)) {
		case "jsonrpc":
			slot = &version
		case "method":
			slot = &method
		case "params":
			slot = &params
		case "id":
			if id != nil {
				dupID = true
			}
			id = v
			return true
		default:
			return true // the specification leaves other members open: ignore them
		}
		if *slot != nil {
			dupOther = true
		}
		*slot = v
		return true
	})
	if id != nil && !dupID && (isString(id) || isNumber(id) || string(id) == "null") {
		r.id = id
	}
	if id != nil && r.id == nil {
		return r, stdError(CodeInvalidRequest) // an id of the wrong type: reply with id null
	}
	switch {
	case dupOther,
		version == nil || !isString(version) || string(unquote(version)) != Version,
		method == nil || !isString(method),
		params != nil && params[0] != '[' && params[0] != '{':
		return r, stdError(CodeInvalidRequest)
	}
	r.method = unquote(method)
	r.params = params
	return r, nil
}

const responsePrefix = `{"jsonrpc":"2.0",`

// appendResponse appends a response to dst: an error response if e is
// non-nil, else a result response (an empty result is null). An empty id is
// null. result and id must be valid JSON.
func appendResponse(dst, id, result []byte, e *Error) []byte {
	dst = append(dst, responsePrefix...)
	if e != nil {
		dst = append(dst, `"error":`...)
		dst = appendErrorObject(dst, e)
	} else {
		dst = append(dst, `"result":`...)
		dst = appendOrNull(dst, result)
	}
	dst = append(dst, `,"id":`...)
	dst = appendOrNull(dst, id)
	return append(dst, '}')
}

func appendOrNull(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, v...)
}

// appendErrorObject appends e as JSON. If e.Data is not valid JSON it is
// left out: the reply must go out anyway.
func appendErrorObject(dst []byte, e *Error) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		b, _ = json.Marshal(&Error{Code: e.Code, Message: e.Message})
	}
	return append(dst, b...)
}

func appendResultResponse(version, id, result []byte) []byte {
	return withVersion(version, appendResponse(nil, id, result, nil))
}

func appendErrorResponse(version, id []byte, e *Error) []byte {
	return withVersion(version, appendResponse(nil, id, nil, e))
}

// withVersion replaces the "2.0" of resp with the quoted version if differs.
func withVersion(version, resp []byte) []byte {
	if string(version) == `"`+Version+`"` {
		return resp
	}
	out := append([]byte(`{"jsonrpc":`), version...)
	out = append(out, ',')
	return append(out, resp[len(responsePrefix):]...)
}
