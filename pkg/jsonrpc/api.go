// Package jsonrpc implements JSON-RPC 2.0 (https://www.jsonrpc.org/specification)
// for both ends of a Bosun connection: the message types, a Dispatcher that
// serves requests, notifications and batches, and a Client that multiplexes
// concurrent calls over one connection.
//
// It exists so that the cloud, the bridge and the workers speak exactly the
// same dialect: strict about what the specification requires ("jsonrpc" is
// exactly "2.0", params are an array or an object, ids are strings, numbers
// or null), silent about what it leaves open (unknown members of a request
// object are ignored), and byte-exact about ids (an id is echoed as the very
// bytes it arrived as, so 1.50 or 18446744073709551616 come back unchanged).
//
// Params are another matter: they are Bosun's own, and Bosun promises exact
// keys. DecodeParams, which every typed Handler uses, refuses a member that
// is not exactly a field's name (encoding/json alone would take "Hostname"
// for "hostname"), an unknown member and a duplicated one. And a batch
// holds at most MaxBatch entries, so one payload cannot start thousands of
// handlers.
//
// The package does no I/O of its own. A transport routes each incoming
// payload with IsResponse (or Classify): responses go to Client.Deliver,
// everything else to Dispatcher.Handle, whose non-nil reply is sent back.
// Method names beginning with "rpc." are reserved by the specification, but
// Bosun serves "rpc.list" on purpose, so they are not rejected.
package jsonrpc

import (
	"encoding/json"
	"strconv"
)

// Version is the value of the "jsonrpc" member of every message.
const Version = "2.0"

// The error codes defined by the specification. Together with their messages
// below they are part of the wire protocol and never change meaning.
// Application codes (Bosun's live in pkg/rpcproto) must stay outside
// -32768..-32000 except for the "server error" range -32099..-32000.
const (
	CodeParseError     = -32700 // the payload is not valid JSON
	CodeInvalidRequest = -32600 // the JSON is not a valid request object
	CodeMethodNotFound = -32601 // no handler is registered for the method
	CodeInvalidParams  = -32602 // the params do not fit the method
	CodeInternalError  = -32603 // the handler failed, panicked or could not run
)

// codeMessages is the message this package sends with each standard code:
// the specification's own wording, so replies match its examples byte for byte.
var codeMessages = map[int]string{
	CodeParseError:     "Parse error",
	CodeInvalidRequest: "Invalid Request",
	CodeMethodNotFound: "Method not found",
	CodeInvalidParams:  "Invalid params",
	CodeInternalError:  "Internal error",
}

// stdError returns a fresh *Error carrying a standard code and its message.
func stdError(code int) *Error {
	return &Error{Code: code, Message: codeMessages[code]}
}

// Error is the error object of a JSON-RPC response. A handler returns one
// (possibly wrapped) to send it as is; a Client returns one for every error
// response it receives.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Error formats the code and message; Data is left out because it may be
// large and is meant for programs, not logs.
func (e *Error) Error() string {
	return "jsonrpc: error " + strconv.Itoa(e.Code) + ": " + e.Message
}

// NewError returns an *Error with data marshalled to JSON. A nil data leaves
// the "data" member out, and so does data that cannot be marshalled (an
// error reply must still go out).
func NewError(code int, message string, data any) *Error {
	e := &Error{Code: code, Message: message}
	if data != nil {
		if b, err := json.Marshal(data); err == nil && string(b) != "null" {
			e.Data = b
		}
	}
	return e
}

// Request is a request or a notification. ID is absent (nil) in a
// notification; a request with an explicit null id has ID "null" and gets a
// reply whose id is null. ID and Params keep their exact bytes.
//
// Marshalling a Request with encoding/json writes the members in the order
// the specification's examples use. Decoding one with encoding/json is not
// strict (member names match case-insensitively); use ParseRequest to
// validate an incoming payload.
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
}

// IsNotification reports whether the id member is absent. An explicit null
// id makes a request, not a notification.
func (r *Request) IsNotification() bool { return len(r.ID) == 0 }

// ParseRequest parses and validates a single request or notification (not a
// batch). A non-nil error is always an *Error with CodeParseError or
// CodeInvalidRequest, ready to send back with the id returned in the
// Request, which is nil (meaning null) when it could not be determined.
func ParseRequest(msg []byte) (*Request, error) {
	if !validJSON(msg) {
		return &Request{}, stdError(CodeParseError)
	}
	req, rerr := parseRequest(trimSpace(msg))
	if rerr != nil {
		return &req, rerr
	}
	return &req, nil
}

// Response is a response: exactly one of Result and Error is set. Its
// members are marshalled in the order the specification's examples use:
// jsonrpc, result or error, id.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

// MarshalJSON writes a well-formed response whatever the fields hold: an
// empty JSONRPC becomes "2.0", an empty Result without Error becomes
// "result":null, and an empty ID becomes null.
func (r Response) MarshalJSON() ([]byte, error) {
	v := r.JSONRPC
	if v == "" {
		v = Version
	}
	vb, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if r.Error != nil {
		return appendErrorResponse(vb, r.ID, r.Error), nil
	}
	return appendResultResponse(vb, r.ID, r.Result), nil
}

// Kind is what a payload is, as far as Classify can tell cheaply.
type Kind int

// The kinds of payload.
const (
	KindInvalid      Kind = iota // not JSON, or JSON that is none of the others
	KindRequest                  // an object with a "method" and an "id" member
	KindNotification             // an object with a "method" and no "id" member
	KindResponse                 // an object with a "result" or "error" member and no "method"
	KindBatch                    // an array, whatever it holds
)

// String returns a lowercase name for logs.
func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	case KindBatch:
		return "batch"
	}
	return "invalid"
}

// Classify tells what msg is by looking only at its top-level shape and
// member names; it validates the JSON syntax but nothing else (Handle and
// Deliver do). It does not allocate for ordinary payloads.
func Classify(msg []byte) Kind {
	if !json.Valid(msg) {
		return KindInvalid
	}
	b := trimSpace(msg)
	switch b[0] {
	case '[':
		return KindBatch
	case '{':
		return classifyObject(b)
	}
	return KindInvalid
}

// IsResponse reports whether msg is a response, or a non-empty batch whose
// every entry is a response. A transport uses it to route a payload to
// Client.Deliver rather than Dispatcher.Handle.
func IsResponse(msg []byte) bool {
	switch Classify(msg) {
	case KindResponse:
		return true
	case KindBatch:
		n := 0
		ok := true
		forEachElement(trimSpace(msg), func(e []byte) bool {
			n++
			ok = e[0] == '{' && classifyObject(e) == KindResponse
			return ok
		})
		return ok && n > 0
	}
	return false
}

// classifyObject classifies a valid JSON object by its member names.
func classifyObject(obj []byte) Kind {
	var method, id, resp bool
	forEachMember(obj, func(key, _ []byte) bool {
		switch string(unquote(key)) {
		case "method":
			method = true
		case "id":
			id = true
		case "result", "error":
			resp = true
		}
		return true
	})
	switch {
	case method && id:
		return KindRequest
	case method:
		return KindNotification
	case resp:
		return KindResponse
	}
	return KindInvalid
}
