// Package rpcproto names Bosun's built-in JSON-RPC methods, their parameter
// and result types, and the application error codes both sides use.
//
// Everything here is part of the wire protocol: a method name, a JSON field or
// an error code never changes meaning. Add; do not edit.
package rpcproto

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Methods served by the cloud (device → cloud).
const (
	MethodRegister     = "registration.register"
	MethodStateReport  = "state.report"
	MethodOTAStatus    = "ota.status"
	MethodOTALatest    = "ota.latest"
	MethodOTAAvailable = "ota.available"
	MethodOTAMetadata  = "ota.metadata"
)

// Notifications the cloud sends to a device.
const (
	// MethodAuthChallenge opens every session. Its envelope's session field
	// is the session every later message must carry; its audience is "*".
	MethodAuthChallenge = "auth.challenge"
	// MethodAuthAccepted tells a pending device it has been accepted.
	MethodAuthAccepted = "auth.accepted"
	// MethodAuthCloudKeys announces the cloud keys a device trusts from then
	// on (a rotation of the cloud key); sent by a cloud started with
	// --cloud-trust once the session is accepted.
	MethodAuthCloudKeys = "auth.cloud_keys"
)

// Methods served by the device's workers (cloud → device).
const (
	MethodRPCList          = "rpc.list"
	MethodSystemInfo       = "system.info"
	MethodContainersList   = "containers.list"
	MethodContainersLogs   = "containers.logs"
	MethodLogsTail         = "logs.tail"
	MethodStateGet         = "state.get"
	MethodOTAUpdate        = "ota.update"
	MethodOTACommit        = "ota.commit"
	MethodOTARevert        = "ota.revert"
	MethodOTACreateSnap    = "ota.create_snapshot"
	MethodOTAGetBootState  = "ota.get_boot_state"
	MethodOTASetBootState  = "ota.set_boot_state"
	MethodWorkerAnnounce   = "worker.announce" // local NATS only, never on the websocket
	WebsocketSubprotocol   = "bosun.v1"
	DeviceEndpointPath     = "/v1/device"
	CloseRejected          = 4003 // websocket close code: key rejected or revoked
	CloseEvicted           = 4009 // websocket close code: a newer session of this device took over
	CloseProtocolViolation = 4002 // websocket close code: a message failed verification, or the handshake timed out
	CloseTryAgainLater     = 1013 // websocket close code (RFC 6455): registration refused by a limit for now
	CloseTooSlow           = 4008 // websocket close code: the peer stopped reading (its send queue filled)
)

// Device ids. The rule admits every host name (RFC 1123 §2.1: dot-separated
// labels of letters, digits and '-', at most 63 bytes each and 253 in all),
// so that the default id, the host name, is always an id; it also admits
// '_' and labels of 64 bytes, which ids had before they could hold dots.
//
// Ids are compared byte for byte: case matters ("Pi-1" and "pi-1" are two
// devices). bosun-bridge lowercases the host name it takes by default, so
// that a host is one id whatever the case of its name.
//
// In the cloud an id is one token of a NATS subject, where a dot separates
// tokens: the cloud encodes it there (fleet.DeviceToken), never uses it raw.
const (
	// DeviceIDPattern is what a device id must match, in the syntax shared
	// by Go's regexp and PostgreSQL's "~" (the CHECK constraint on
	// devices.id is this pattern and DeviceIDMaxLen).
	DeviceIDPattern = `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}(\.[A-Za-z0-9][A-Za-z0-9_-]{0,63})*$`
	// DeviceIDMaxLen is the longest device id in bytes: the longest host name.
	DeviceIDMaxLen = 253
	// DeviceIDRule is the rule in words, for error messages and docs.
	DeviceIDRule = "1 to 253 bytes of dot-separated labels; each label 1 to 64 ASCII letters, digits, '-' or '_', starting with a letter or digit"
)

var deviceIDRE = regexp.MustCompile(DeviceIDPattern)

// ValidDeviceID reports whether id is a device id: at most DeviceIDMaxLen
// bytes and matching DeviceIDPattern.
func ValidDeviceID(id string) bool { return len(id) <= DeviceIDMaxLen && deviceIDRE.MatchString(id) }

// ValidMethod reports whether name is a method a device can serve:
// non-empty dot-separated tokens of ASCII letters, digits, '_' and '-', at
// most 200 bytes, so that it is also a valid NATS subject suffix
// (SubjectRPCPrefix + name).
func ValidMethod(name string) bool {
	if name == "" || len(name) > 200 {
		return false
	}
	for tok := range strings.SplitSeq(name, ".") {
		if tok == "" {
			return false
		}
		for _, c := range []byte(tok) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
			if !ok {
				return false
			}
		}
	}
	return true
}

// PendingOnlyMethods are the device → cloud methods a device whose key is not
// (yet) accepted may call: a pending device may only wait. Every other
// method is refused with CodeNotAccepted and changes nothing.
var PendingOnlyMethods = map[string]bool{
	MethodRegister: true,
}

// Registration statuses.
const (
	StatusAccepted = "accepted"
	StatusPending  = "pending"
	StatusRejected = "rejected"
)

// AuthChallengeParams are the params of auth.challenge.
type AuthChallengeParams struct {
	CloudID string `json:"cloud_id"`
	// Replica names the cloud replica holding this session (informational).
	Replica string `json:"replica,omitempty"`
}

// RegisterParams are the params of registration.register. The envelope that
// carries them must be signed by the key in PublicKey; the signer field of
// the envelope must equal DeviceID.
type RegisterParams struct {
	DeviceID string `json:"device_id"`
	// PublicKey is the base64 (standard, padded) DER SPKI of the device key.
	PublicKey string `json:"public_key"`
	// Attributes are identity attributes shown to the operator before
	// acceptance (e.g. mac, serial, model).
	Attributes map[string]string `json:"attributes,omitempty"`
	// EnrollmentToken optionally names the organisation to join.
	EnrollmentToken string `json:"enrollment_token,omitempty"`
}

// RegisterResult answers registration.register.
type RegisterResult struct {
	Status      string `json:"status"` // accepted, pending or rejected
	Fingerprint string `json:"fingerprint"`
	KeyChanged  bool   `json:"key_changed,omitempty"`
}

// AuthAcceptedParams are the params of auth.accepted.
type AuthAcceptedParams struct {
	Fingerprint string `json:"fingerprint"`
}

// AuthCloudKeysParams are the params of auth.cloud_keys: the cloud's public
// keys, each a DER SubjectPublicKeyInfo in standard padded base64, 1 to
// keys.MaxKeySet of them, the key that signs the session among them.
type AuthCloudKeysParams struct {
	Keys []string `json:"keys"`
}

// StateReportParams are the params of state.report: the device's inventory.
type StateReportParams struct {
	Hostname string            `json:"hostname,omitempty"`
	OS       string            `json:"os,omitempty"`
	Arch     string            `json:"arch,omitempty"`
	Versions map[string]string `json:"versions,omitempty"`
	Workers  []string          `json:"workers,omitempty"`
	// Methods are the methods the device serves now (what rpc.list
	// answers): the cloud lists them without calling the device.
	Methods []MethodInfo `json:"methods,omitempty"`
	// Attributes are free-form inventory attributes.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// StateReportResult answers state.report.
type StateReportResult struct {
	Stored bool `json:"stored"`
}

// MethodInfo describes one method a device serves.
type MethodInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Worker      string `json:"worker,omitempty"`
}

// RPCListResult answers rpc.list.
type RPCListResult struct {
	Methods []MethodInfo `json:"methods"`
}

// WorkerAnnounce is what a worker publishes on the device's local NATS
// (subject SubjectAnnounce) when it starts, and again when asked.
type WorkerAnnounce struct {
	Worker  string       `json:"worker"`
	Methods []MethodInfo `json:"methods"`
}

// Device-local NATS subjects.
const (
	// SubjectRPCPrefix + method: cloud → device requests, queue group QueueWorkers.
	SubjectRPCPrefix = "bosun.rpc."
	// SubjectCloudPrefix + method: device → cloud requests from workers.
	SubjectCloudPrefix = "bosun.cloud."
	// SubjectAnnounce: workers publish WorkerAnnounce here.
	SubjectAnnounce = "bosun.workers.announce"
	// SubjectDiscover: the bridge publishes here to ask every worker to
	// announce again (e.g. after the bridge restarts).
	SubjectDiscover = "bosun.workers.discover"
	QueueWorkers    = "workers"
)

// SystemInfoResult answers system.info.
type SystemInfoResult struct {
	Hostname      string            `json:"hostname"`
	OS            string            `json:"os"`
	Kernel        string            `json:"kernel"`
	Arch          string            `json:"arch"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Load          [3]float64        `json:"load"`
	MemTotalBytes uint64            `json:"mem_total_bytes"`
	MemAvailBytes uint64            `json:"mem_available_bytes"`
	DiskTotal     uint64            `json:"disk_total_bytes"`
	DiskFree      uint64            `json:"disk_free_bytes"`
	Versions      map[string]string `json:"versions,omitempty"`
}

// Container is one row of containers.list.
type Container struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Image   string            `json:"image"`
	State   string            `json:"state"`
	Status  string            `json:"status"`
	Created int64             `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// ContainersListParams are the params of containers.list.
type ContainersListParams struct {
	All bool `json:"all,omitempty"`
}

// ContainersListResult answers containers.list.
type ContainersListResult struct {
	Containers []Container `json:"containers"`
}

// ContainersLogsParams are the params of containers.logs.
type ContainersLogsParams struct {
	Container  string `json:"container"` // id or name
	Tail       int    `json:"tail,omitempty"`
	Since      string `json:"since,omitempty"` // RFC 3339 time or Go duration ("10m")
	Timestamps bool   `json:"timestamps,omitempty"`
}

// LogLine is one demultiplexed log line.
type LogLine struct {
	Stream string `json:"stream"` // stdout or stderr
	Line   string `json:"line"`
}

// ContainersLogsResult answers containers.logs.
type ContainersLogsResult struct {
	Lines []LogLine `json:"lines"`
}

// LogsTailParams are the params of logs.tail.
type LogsTailParams struct {
	File  string `json:"file,omitempty"` // e.g. "bridge", "worker"; empty: all
	Lines int    `json:"lines,omitempty"`
	Since string `json:"since,omitempty"`
}

// LogsTailResult answers logs.tail.
type LogsTailResult struct {
	Lines []FileLine `json:"lines"`
}

// FileLine is one line of a device log file.
type FileLine struct {
	File string `json:"file"`
	Line string `json:"line"`
}

// Application error codes. JSON-RPC reserves -32768..-32000 for the
// protocol; Bosun's own codes live in -32099..-32000 ("server error") as the
// specification allows. This table is the one place they are defined.
const (
	CodeDeviceOffline  = -32000 // the device holds no live session
	CodeTimeout        = -32001 // no answer before the deadline
	CodeNotAccepted    = -32002 // the device's key is not accepted
	CodeWorkerTimeout  = -32003 // the worker serving the method did not answer in time
	CodeQueueFull      = -32004 // the device's send queue is full
	CodeUnavailable    = -32005 // a dependency (the device's container engine, the cloud's database) is unavailable: try again
	CodeNotFound       = -32006 // the named object does not exist
	CodeExpired        = -32007 // a queued call expired before delivery
	CodeUnauthorized   = -32008 // the caller may not call this method
	CodeSessionEvicted = -32009 // the session ended before the answer came
	CodeBusy           = -32010 // every handler of the receiving side is busy: try again
	CodeTryLater       = -32011 // registration refused by a limit for now: try again later (the connection closes with 1013)
	CodeConflict       = -32012 // the device's state does not allow this now (e.g. ota.update while a slot awaits its commit)
)

// ErrorMessages gives the stable message of each application code.
var ErrorMessages = map[int]string{
	CodeDeviceOffline:  "device offline",
	CodeTimeout:        "timeout",
	CodeNotAccepted:    "device not accepted",
	CodeWorkerTimeout:  "worker timeout",
	CodeQueueFull:      "device send queue full",
	CodeUnavailable:    "unavailable",
	CodeNotFound:       "not found",
	CodeExpired:        "expired",
	CodeUnauthorized:   "unauthorized",
	CodeSessionEvicted: "session ended",
	CodeBusy:           "busy: too many requests in flight",
	CodeTryLater:       "registration refused for now: try again later",
	CodeConflict:       "conflict",
}

// Raw is a convenience alias for callers that pass params through untouched.
type Raw = json.RawMessage
