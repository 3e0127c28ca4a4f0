// Package wire holds the JSON shapes and error codes of Bosun's HTTP API
// (/api/v1). The server (package api) and its clients (package client, the
// bosun CLI) share them, so the CLI does not link the server.
//
// Field names and error codes are part of the API: add, do not change.
package wire

import (
	"encoding/json"
	"time"
)

// Error codes of the API. This table is the one place they are defined;
// docs/api.md repeats it. A code never changes meaning.
const (
	CodeInvalidRequest   = "invalid_request"        // 400: malformed JSON, unknown field, bad parameter or duration
	CodeUnauthenticated  = "unauthenticated"        // 401: missing, malformed, unknown or revoked API token
	CodeForbidden        = "forbidden"              // 403: the token's role may not do this
	CodeNotFound         = "not_found"              // 404: no such device, call, token or route in the caller's organisation
	CodeMethodNotAllowed = "method_not_allowed"     // 405: the route exists, the HTTP method does not
	CodeConflict         = "conflict"               // 409: the object is not in a state that allows this (e.g. nothing pending to accept)
	CodeAmbiguousKey     = "ambiguous_key"          // 409: accept named no fingerprint and the device has several keys it could accept
	CodeTooLarge         = "payload_too_large"      // 413: request body over the size limit
	CodeUnsupportedMedia = "unsupported_media_type" // 415: request body is not application/json
	CodeInternal         = "internal"               // 500: anything else; details are in the server log only
	CodeUnavailable      = "unavailable"            // 503: the database is unavailable; nothing was stored: try again
)

// ErrorCodes lists every API error code with its HTTP status and meaning,
// in the order docs/api.md shows them.
var ErrorCodes = []struct {
	Code    string
	Status  int
	Meaning string
}{
	{CodeInvalidRequest, 400, "malformed JSON, unknown field, trailing data, bad query parameter or duration"},
	{CodeUnauthenticated, 401, "missing, malformed, unknown or revoked API token"},
	{CodeForbidden, 403, "the token's role may not do this"},
	{CodeNotFound, 404, "no such device, call, token or route in the caller's organisation"},
	{CodeMethodNotAllowed, 405, "the route exists but not with this HTTP method"},
	{CodeConflict, 409, "the object's state does not allow this (e.g. nothing to accept, or the named key is revoked or accepted already)"},
	{CodeAmbiguousKey, 409, "accept without a fingerprint, and the device has more than one key that could be accepted: error.fingerprints lists them"},
	{CodeTooLarge, 413, "request body over the size limit (1 MiB)"},
	{CodeUnsupportedMedia, 415, "request body is not application/json"},
	{CodeInternal, 500, "server error; the details are only in the server log"},
	{CodeUnavailable, 503, "the database is unavailable (down, restarting, unreachable): nothing was stored; try again"},
}

// StatusOf returns the HTTP status of an API error code, or 500 for a code
// not in the table.
func StatusOf(code string) int {
	for _, c := range ErrorCodes {
		if c.Code == code {
			return c.Status
		}
	}
	return 500
}

// ErrorBody is the body of every error response: {"error":{...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is one API error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Fingerprints lists, for ambiguous_key, the device's pending keys,
	// newest first: the candidates for AcceptRequest.Fingerprint.
	Fingerprints []string `json:"fingerprints,omitempty"`
}

// Device is one device of the fleet.
type Device struct {
	ID          string `json:"id"`
	OrgID       int64  `json:"org_id"`
	Status      string `json:"status"` // pending, accepted, rejected, preauthorized, decommissioned
	Fingerprint string `json:"fingerprint,omitempty"`
	Alg         string `json:"alg,omitempty"`
	KeyChanged  bool   `json:"key_changed"`
	Online      bool   `json:"online"`
	// Replica names the cloud replica holding the device's session.
	Replica    string            `json:"replica,omitempty"`
	FirstSeen  time.Time         `json:"first_seen"`
	LastSeen   time.Time         `json:"last_seen"`
	Tags       []string          `json:"tags"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Inventory is the last state.report of the device, if any.
	Inventory json.RawMessage `json:"inventory,omitempty"`
}

// DeviceList answers GET /devices.
type DeviceList struct {
	Items  []Device `json:"items"`
	Total  int      `json:"total"` // matching devices, ignoring limit and offset
	Limit  int      `json:"limit"`
	Offset int      `json:"offset"`
}

// KeySet is one public key a device presented.
type KeySet struct {
	ID          int64             `json:"id"`
	DeviceID    string            `json:"device_id"`
	Fingerprint string            `json:"fingerprint"`
	Alg         string            `json:"alg"`
	Status      string            `json:"status"`
	KeyChanged  bool              `json:"key_changed"`
	PublicKey   string            `json:"public_key"` // base64 (standard, padded) DER SPKI
	Attributes  map[string]string `json:"attributes,omitempty"`
	FirstSeen   time.Time         `json:"first_seen"`
	LastSeen    time.Time         `json:"last_seen"`
}

// KeySetList answers GET /devices/{id}/keys.
type KeySetList struct {
	Items []KeySet `json:"items"`
}

// TagsRequest is the body of PUT /devices/{id}/tags. Tags replaces every
// tag of the device; an empty list removes them all.
type TagsRequest struct {
	Tags *[]string `json:"tags"`
}

// AcceptRequest is the body of POST /devices/{id}/accept (optional: no
// body is the same as {}).
type AcceptRequest struct {
	// Fingerprint names the pending key to accept, "SHA256:..." as the
	// device's keys show it. Empty means the device's only pending key;
	// with several the answer is ambiguous_key.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// AcceptResponse answers POST /devices/{id}/accept: the device as it is
// afterwards, and the fingerprint of the key accepted.
type AcceptResponse struct {
	Device
	AcceptedFingerprint string `json:"accepted_fingerprint"`
}

// PreauthorizeRequest is the body of POST /devices/{id}/preauthorize.
type PreauthorizeRequest struct {
	// PublicKey is a "PUBLIC KEY" PEM block or the base64 of a DER SPKI.
	PublicKey string `json:"public_key"`
}

// PreauthorizeBulkRequest is the body of POST /devices/preauthorize: 1 to
// 1000 devices, refused whole when one entry is bad.
type PreauthorizeBulkRequest struct {
	Devices []PreauthorizeEntry `json:"devices"`
}

// PreauthorizeEntry is one device of a PreauthorizeBulkRequest.
type PreauthorizeEntry struct {
	ID string `json:"id"`
	// PublicKey is a "PUBLIC KEY" PEM block or the base64 of a DER SPKI.
	PublicKey string `json:"public_key"`
}

// PreauthorizeBulkResponse answers POST /devices/preauthorize.
type PreauthorizeBulkResponse struct {
	Preauthorized int                  `json:"preauthorized"`
	Devices       []PreauthorizedEntry `json:"devices"`
}

// PreauthorizedEntry is one device of a PreauthorizeBulkResponse.
type PreauthorizedEntry struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
}

// CallRequest is the body of POST /devices/{id}/call.
type CallRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
	// Timeout is a Go duration ("10s"); empty means 30s, at most 5m.
	Timeout string `json:"timeout,omitempty"`
	// TTL is a Go duration; when set and the device is offline the call is
	// queued (202) and delivered when it reconnects, until TTL passes.
	TTL string `json:"ttl,omitempty"`
}

// RPCError is a JSON-RPC error as a device (or the cloud on its behalf)
// answered it.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Call is one RPC call and, once finished, its outcome.
type Call struct {
	ID       string          `json:"id"`
	DeviceID string          `json:"device_id"`
	Method   string          `json:"method"`
	Params   json.RawMessage `json:"params,omitempty"`
	// Status is queued, sent, delivered, succeeded, failed, timeout or expired.
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      *RPCError       `json:"error,omitempty"`
	Actor      string          `json:"actor"`
	CreatedAt  time.Time       `json:"created_at"`
	SentAt     *time.Time      `json:"sent_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	ExpiresAt  *time.Time      `json:"expires_at,omitempty"`
	DurationMS int64           `json:"duration_ms"`
}

// CallList answers GET /calls.
type CallList struct {
	Items []Call `json:"items"`
}

// FanOutRequest is the body of POST /calls: exactly one of Devices and Tag.
type FanOutRequest struct {
	Devices []string        `json:"devices,omitempty"`
	Tag     string          `json:"tag,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	Timeout string          `json:"timeout,omitempty"`
}

// FanOutSummary ends a fan-out stream.
type FanOutSummary struct {
	Total     int `json:"total"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Offline   int `json:"offline"`
	TimedOut  int `json:"timed_out"`
}

// Fan-out stream line types.
const (
	LineResult  = "result"
	LineSummary = "summary"
	LineError   = "error"
)

// FanOutLine is one line of the application/x-ndjson answer of POST /calls:
// a "result" line per device as results arrive, then one "summary" line, or
// an "error" line if the fan-out broke off after it started.
type FanOutLine struct {
	Type    string         `json:"type"`
	Call    *Call          `json:"call,omitempty"`
	Summary *FanOutSummary `json:"summary,omitempty"`
	Error   *ErrorDetail   `json:"error,omitempty"`
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID      int64           `json:"id"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Outcome string          `json:"outcome"`
	Detail  json.RawMessage `json:"detail,omitempty"`
	At      time.Time       `json:"at"`
}

// AuditList answers GET /audit.
type AuditList struct {
	Items []AuditEntry `json:"items"`
}

// Event is one server-sent event of GET /events; the SSE "event" field
// repeats Type.
type Event struct {
	// Type is device.connected, device.disconnected, device.pending,
	// device.accepted, device.rejected, device.key_changed,
	// device.decommissioned or call.finished.
	Type     string          `json:"type"`
	DeviceID string          `json:"device_id,omitempty"`
	CallID   string          `json:"call_id,omitempty"`
	At       time.Time       `json:"at"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// Token describes an API token; its secret is shown only once, on creation.
type Token struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	UserID    int64      `json:"user_id"`
	CreatedAt time.Time  `json:"created_at"`
	LastUsed  *time.Time `json:"last_used,omitempty"`
	Revoked   bool       `json:"revoked"`
}

// TokenList answers GET /tokens.
type TokenList struct {
	Items []Token `json:"items"`
}

// CreateTokenRequest is the body of POST /tokens.
type CreateTokenRequest struct {
	Name string `json:"name"`
}

// CreateTokenResponse answers POST /tokens. Secret ("bsn_...") is not
// stored by the server and cannot be shown again.
type CreateTokenResponse struct {
	Secret string `json:"secret"`
	Token  Token  `json:"token"`
}

// OTAReport is one ota.status report of a device (docs/protocol.md §9.7).
type OTAReport struct {
	DeviceID   string    `json:"device_id"`
	Seq        int64     `json:"seq"`
	UpdateID   string    `json:"update_id"`
	Target     string    `json:"target"`
	Status     string    `json:"status"`
	Percent    *int      `json:"percent,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Slot       string    `json:"slot,omitempty"`
	ReportedAt time.Time `json:"reported_at"`
	ReceivedAt time.Time `json:"received_at"`
}

// OTAReportList answers GET /devices/{id}/ota/reports, newest first.
type OTAReportList struct {
	Items []OTAReport `json:"items"`
}
