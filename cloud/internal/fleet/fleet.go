// Package fleet is the cloud's one coordinator: the HTTP API, the dashboard,
// the device websocket hub and the CLI bootstrap commands all go through
// Service, never straight to the store.
//
// Service owns the rules: who may see and change what (organisation and
// role of the Actor, checked here and nowhere else), what a registration
// decides, how a call is recorded, routed and finished, what lands in the
// audit log, and which events are published. It routes calls over NATS to
// the replica holding the device's session (see subjects.go), so every
// replica serves every device, and it publishes events on NATS so
// Subscribe sees those of every replica.
//
// All methods are safe for concurrent use. Methods taking an Actor check
// organisation and role; a device of another organisation is reported as
// ErrNotFound, not ErrForbidden, so its existence does not leak.
package fleet

import (
	"errors"
	"strconv"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// Errors returned by Service. Wrapped errors keep them errors.Is-able; a
// refusal meant for people (bad input, a conflicting state) is a
// *PublicError of its kind, whose message is safe to show (see public.go).
var (
	// ErrNotFound: the object does not exist, or is not visible to the actor.
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the actor's role does not allow the action.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid: the input is invalid; the public message says why.
	ErrInvalid = errors.New("invalid input")
	// ErrConflict: the action conflicts with the current state (e.g. no
	// pending key to accept, email already taken).
	ErrConflict = errors.New("conflict")
	// ErrUnauthenticated: the credentials are missing, wrong or revoked.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrReplicaTaken: another live process holds this replica's name
	// (Start), or took it while this one had lost its database connection
	// (Lost).
	ErrReplicaTaken = errors.New("replica name taken")
)

// Role is what an Actor may do within its organisation.
type Role string

// Roles, from most to least powerful.
const (
	// RoleSuper sees and manages every organisation.
	RoleSuper Role = "super"
	// RoleAdmin manages its organisation: users, devices, OTA.
	RoleAdmin Role = "admin"
	// RoleOperator accepts and rejects devices, calls methods, runs OTA.
	RoleOperator Role = "operator"
	// RoleViewer reads.
	RoleViewer Role = "viewer"
)

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool {
	switch r {
	case RoleSuper, RoleAdmin, RoleOperator, RoleViewer:
		return true
	}
	return false
}

// Actor is who asks: a user, through a web session or an API token.
type Actor struct {
	UserID  int64
	Email   string // "" for tokens of no user
	OrgID   int64
	Role    Role
	TokenID int64 // 0 when not authenticated by token
}

// Name is how the actor appears in audit rows and calls: the email, or
// "token:<id>".
func (a Actor) Name() string {
	if a.Email != "" {
		return a.Email
	}
	return "token:" + strconv.FormatInt(a.TokenID, 10)
}

// sees reports whether the actor may read objects of org.
func (a Actor) sees(org int64) bool {
	return a.Role == RoleSuper || (a.Role.Valid() && a.OrgID == org)
}

// operates reports whether the actor may accept, reject, preauthorise and
// call devices of org.
func (a Actor) operates(org int64) bool {
	return a.Role == RoleSuper || ((a.Role == RoleAdmin || a.Role == RoleOperator) && a.OrgID == org)
}

// administers reports whether the actor may manage users and decommission
// devices of org.
func (a Actor) administers(org int64) bool {
	return a.Role == RoleSuper || (a.Role == RoleAdmin && a.OrgID == org)
}

// scope is the organisation filter for list queries: 0 (all) for super.
func (a Actor) scope() int64 {
	if a.Role == RoleSuper {
		return 0
	}
	return a.OrgID
}

// Device is a device as the dashboard and the API show it. Status is one of
// pending, accepted, rejected, preauthorized, decommissioned; Fingerprint,
// Alg and KeyChanged describe its current key set (the newest pending one if
// any, else the accepted one).
type Device = store.Device

// KeySet is one public key a device presented (or an operator
// preauthorised) with its own status: pending, accepted, rejected,
// preauthorized or revoked.
type KeySet = store.KeySet

// Counts are device totals for the dashboard header.
type Counts = store.Counts

// Call is one RPC call and, once finished, its outcome. Status is one of
// queued, sent, delivered, succeeded, failed, timeout, expired.
type Call = store.Call

// AuditEntry is one row of the audit log.
type AuditEntry = store.AuditEntry

// Token is an API token; its secret is shown once and stored hashed.
type Token = store.Token

// DeviceFilter selects devices. Limit 0 means 50; at most 500.
type DeviceFilter struct {
	Status string
	Online *bool
	Tag    string
	Text   string // substring of the id or of an identity attribute
	Limit  int
	Offset int
}

// CallFilter selects calls, newest first. Limit 0 means 50; at most 500.
type CallFilter struct {
	DeviceID string
	Status   string
	Limit    int
}

// AuditFilter selects audit rows, newest first. Limit 0 means 50; at most 500.
type AuditFilter struct {
	Actor, Action, Target string
	Limit                 int
	// Before and After are keyset cursors (audit row ids): Before > 0
	// lists the rows older than it, After > 0 the Limit rows newer than
	// it, newest first either way.
	Before, After int64
}

// Event types published by Service.
const (
	EventDeviceConnected      = "device.connected"
	EventDeviceDisconnected   = "device.disconnected"
	EventDevicePending        = "device.pending"
	EventDeviceAccepted       = "device.accepted"
	EventDeviceRejected       = "device.rejected"
	EventDeviceKeyChanged     = "device.key_changed"
	EventDeviceDecommissioned = "device.decommissioned"
	EventCallFinished         = "call.finished"
	EventOTAStatus            = "ota.status" // a device reported an update's status (Data: the report)
)

// Call limits.
const (
	// DefaultCallTimeout is the answer timeout of a call that names none.
	DefaultCallTimeout = 30 * time.Second
	// MaxCallTimeout is the longest answer timeout a call may ask for.
	MaxCallTimeout = 5 * time.Minute
	// MaxCallTTL is the longest a call may wait queued for its device.
	MaxCallTTL = 30 * 24 * time.Hour
)

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 500:
		return 500
	}
	return n
}
