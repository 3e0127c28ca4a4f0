package fleet

import (
	"encoding/json"
	"strconv"
)

// NATS subjects. Device ids are restricted to [A-Za-z0-9_-] and org ids are
// numbers, so both are always single, safe subject tokens.
//
//	bosun.dev.<org>.<device>.call   request: RouteRequest, reply: Call (JSON); queue group "holder"
//	bosun.dev.<org>.<device>.drain  request: DrainRequest (or empty), reply: DrainReply (or empty); the holder sends queued calls
//	bosun.dev.<org>.<device>.evict  EvictMsg: holders of older sessions close them (4009)
//	bosun.dev.<org>.<device>.key    KeyMsg: a key was accepted, or must lose its session (4003)
//	bosun.call.<id>.done            the finished Call (JSON), or a persistent one queued again, for whoever waits on it
//	bosun.events.<org>              Event (JSON)
const (
	// SubjectEvictAll matches the evict subject of every device.
	SubjectEvictAll = "bosun.dev.*.*.evict"
	// SubjectKeyAll matches the key subject of every device.
	SubjectKeyAll = "bosun.dev.*.*.key"
	// SubjectEventsAll matches the events of every organisation.
	SubjectEventsAll = "bosun.events.*"
	// QueueHolder is the queue group of the per-session subscriptions, so
	// that while an old and a new session overlap, a request reaches one.
	QueueHolder = "holder"
)

func devSubject(org int64, dev, what string) string {
	return "bosun.dev." + strconv.FormatInt(org, 10) + "." + dev + "." + what
}

// SubjectCall is where calls to a device are requested.
func SubjectCall(org int64, dev string) string { return devSubject(org, dev, "call") }

// SubjectDrain asks the holder of a device's session to send queued calls.
func SubjectDrain(org int64, dev string) string { return devSubject(org, dev, "drain") }

// SubjectEvict announces a new session of a device.
func SubjectEvict(org int64, dev string) string { return devSubject(org, dev, "evict") }

// SubjectKey announces a key decision about a device.
func SubjectKey(org int64, dev string) string { return devSubject(org, dev, "key") }

// SubjectCallDone carries the finished call with the given id.
func SubjectCallDone(id string) string { return "bosun.call." + id + ".done" }

// SubjectEvents carries the events of an organisation.
func SubjectEvents(org int64) string { return "bosun.events." + strconv.FormatInt(org, 10) }

// RouteRequest asks the holder of a session to make one call.
type RouteRequest struct {
	CallID    string          `json:"call_id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params,omitempty"`
	TimeoutMS int64           `json:"timeout_ms"`
}

// DrainRequest asks the holder of a session to send the device's queued
// calls; CallID and Method name the call just queued, if any.
type DrainRequest struct {
	CallID string `json:"call_id,omitempty"`
	Method string `json:"method,omitempty"`
}

// DrainReply answers a DrainRequest. Unlisted: the holder will not send the
// named call now, because the device does not list its method (or
// answered -32601 for it): the call waits, and says why in its error.
type DrainReply struct {
	Unlisted bool `json:"unlisted,omitempty"`
}

// EvictMsg announces that session Version of a device started on Replica:
// every session of that device with a lower version must close.
type EvictMsg struct {
	Version int64  `json:"version"`
	Replica string `json:"replica"`
}

// KeyMsg announces an operator's decision about a device's keys.
type KeyMsg struct {
	// Accepted is the fingerprint of a key set just accepted: a pending
	// session using it is told auth.accepted.
	Accepted string `json:"accepted,omitempty"`
	// Closed are fingerprints whose sessions must close with 4003.
	Closed []string `json:"closed,omitempty"`
}
