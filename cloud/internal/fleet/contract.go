// Package fleet is the cloud's one coordinator: the HTTP API, the dashboard,
// the device websocket hub and the CLI bootstrap commands all go through
// Service, never straight to the store.
package fleet

// CONTRACT (written by the lead; the cloud-core engineer implements it, the
// API engineer codes against it; keep names and signatures, add freely, and
// replace this comment with real docs when done). All methods are safe for
// concurrent use; every method takes ctx first and an Actor that is checked
// for organisation and role on the server side.
//
//	type Role string; const RoleSuper="super", RoleAdmin="admin", RoleOperator="operator", RoleViewer="viewer"
//	type Actor struct { UserID int64; Email string; OrgID int64; Role Role; TokenID int64 }  // Email "" for tokens of no user
//	func (a Actor) Name() string            // for audit rows: email, or "token:<id>"
//	var ErrNotFound, ErrForbidden, ErrInvalid, ErrConflict, ErrUnauthenticated error  // errors.Is-able; ErrInvalid wrapped with a human message
//
//	type Device struct {
//	    OrgID int64; ID string; Status string  // pending|accepted|rejected|preauthorized|decommissioned
//	    Fingerprint string; Alg string; KeyChanged bool; Online bool; Replica string; SessionVersion int64
//	    FirstSeen, LastSeen time.Time; Tags []string; Attributes map[string]string  // identity attrs from registration
//	    Inventory json.RawMessage  // last state.report params, or nil
//	}
//	type KeySet struct { ID int64; DeviceID, Fingerprint, Alg, Status string; KeyChanged bool; PublicKeyDER []byte
//	                     Attributes map[string]string; FirstSeen, LastSeen time.Time }
//	type DeviceFilter struct { Status string; Online *bool; Tag, Text string; Limit, Offset int }  // Limit 0 → 50, max 500
//	func (s *Service) ListDevices(ctx, a Actor, f DeviceFilter) (devs []Device, total int, err error)
//	func (s *Service) GetDevice(ctx, a Actor, id string) (Device, error)
//	func (s *Service) ListKeySets(ctx, a Actor, deviceID string) ([]KeySet, error)
//	func (s *Service) Accept(ctx, a Actor, deviceID string) error          // newest pending key set; live pending session gets auth.accepted at once
//	func (s *Service) Reject(ctx, a Actor, deviceID string) error          // live session closed with 4003 within a second
//	func (s *Service) Preauthorize(ctx, a Actor, deviceID string, publicKeyDER []byte) error
//	func (s *Service) Decommission(ctx, a Actor, deviceID string) error    // revokes keys, closes session, keeps history
//	func (s *Service) SetTags(ctx, a Actor, deviceID string, tags []string) error
//	func (s *Service) Counts(ctx, a Actor) (Counts, error)                 // Counts{Online, Offline, Pending, Rejected, Total int}
//
//	type CallRequest struct { DeviceID, Method string; Params json.RawMessage; Timeout, TTL time.Duration }
//	    // Timeout 0 → 30s, max 5m. TTL 0: synchronous, device offline → Call with status failed and error code -32000.
//	    // TTL > 0 and device offline: stored queued, delivered in order on reconnect (also after a cloud restart).
//	type Call struct {
//	    ID string; OrgID int64; DeviceID, Method string; Params json.RawMessage
//	    Status string   // queued|sent|delivered|succeeded|failed|timeout|expired
//	    Result json.RawMessage; Error *jsonrpc.Error; Actor string
//	    CreatedAt time.Time; SentAt, FinishedAt, ExpiresAt *time.Time; DurationMS int64
//	}
//	func (s *Service) Call(ctx, a Actor, req CallRequest) (Call, error)  // waits for the result unless queued; err only for bad input/auth/infra
//	type FanOutRequest struct { DeviceIDs []string; Tag string; Method string; Params json.RawMessage; Timeout time.Duration }
//	type FanOutSummary struct { Total, Succeeded, Failed, Offline, TimedOut int }
//	func (s *Service) FanOut(ctx, a Actor, req FanOutRequest, each func(Call)) (FanOutSummary, error)  // each called as results arrive (serialised)
//	func (s *Service) GetCall(ctx, a Actor, id string) (Call, error)
//	type CallFilter struct { DeviceID, Status string; Limit int }
//	func (s *Service) ListCalls(ctx, a Actor, f CallFilter) ([]Call, error)
//
//	type AuditEntry struct { ID int64; OrgID int64; Actor, Action, Target, Outcome string; Detail json.RawMessage; At time.Time }
//	type AuditFilter struct { Actor, Action, Target string; Limit int }
//	func (s *Service) AuditLog(ctx, a Actor, f AuditFilter) ([]AuditEntry, error)
//
//	type Event struct { Type string; OrgID int64; DeviceID, CallID string; At time.Time; Data json.RawMessage }
//	    // Types: device.connected, device.disconnected, device.pending, device.accepted, device.rejected,
//	    //        device.key_changed, device.decommissioned, call.finished
//	func (s *Service) Subscribe(ctx context.Context, a Actor) (<-chan Event, error)  // events of every replica (via NATS), org-scoped;
//	    // the channel closes when ctx ends; a subscriber that cannot keep up is dropped (channel closed)
//
//	func (s *Service) AuthenticateToken(ctx, token string) (Actor, error)         // ErrUnauthenticated
//	type Token struct { ID int64; Name string; UserID int64; CreatedAt time.Time; LastUsed *time.Time; Revoked bool }
//	func (s *Service) CreateToken(ctx, a Actor, name string) (secret string, tok Token, err error)  // secret shown once, stored hashed
//	func (s *Service) ListTokens(ctx, a Actor) ([]Token, error)
//	func (s *Service) RevokeToken(ctx, a Actor, id int64) error
