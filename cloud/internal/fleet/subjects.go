package fleet

import (
	"encoding/json"
	"strconv"
	"strings"
)

// NATS subjects. Org ids are numbers; <device> is DeviceToken(device id),
// never the id itself: ids may hold dots (host names), and a dot separates
// subject tokens.
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
	return "bosun.dev." + strconv.FormatInt(org, 10) + "." + DeviceToken(dev) + "." + what
}

// DeviceToken encodes a device id as one literal NATS subject token: every
// byte but ASCII letters, digits, '-' and '_' becomes %XX (upper-case hex),
// so "pi.kitchen.local" is "pi%2Ekitchen%2Elocal". The encoding is defined
// for any string, not only valid ids, and it is injective: two different
// strings never share a token, so two devices never share a subject. The
// token never holds '.', '*', '>', white space or control bytes, so it is
// never a wildcard or more than one token; the empty string, which no
// encoding of a non-empty string yields, is "%".
func DeviceToken(id string) string {
	if id == "" {
		return "%"
	}
	plain := true
	for i := 0; i < len(id); i++ {
		if !tokenSafe(id[i]) {
			plain = false
			break
		}
	}
	if plain {
		return id
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(id) + 8)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if tokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// ParseDeviceToken is the inverse of DeviceToken. It accepts only what
// DeviceToken yields (upper-case hex, nothing escaped that need not be), so
// each id has exactly one token.
func ParseDeviceToken(tok string) (string, bool) {
	if tok == "%" {
		return "", true
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case tokenSafe(c):
			b.WriteByte(c)
		case c == '%' && i+2 < len(tok) && upperHex(tok[i+1]) >= 0 && upperHex(tok[i+2]) >= 0:
			d := byte(upperHex(tok[i+1])<<4 | upperHex(tok[i+2]))
			if tokenSafe(d) {
				return "", false // not canonical: d is never escaped
			}
			b.WriteByte(d)
			i += 2
		default:
			return "", false
		}
	}
	if b.Len() == 0 {
		return "", false
	}
	return b.String(), true
}

// ParseDevSubject splits bosun.dev.<org>.<device>.<what> and decodes the
// device id; ok is false for any other subject.
func ParseDevSubject(subject string) (org int64, dev, what string, ok bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 || parts[0] != "bosun" || parts[1] != "dev" {
		return 0, "", "", false
	}
	org, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return 0, "", "", false
	}
	if dev, ok = ParseDeviceToken(parts[3]); !ok {
		return 0, "", "", false
	}
	return org, dev, parts[4], true
}

func tokenSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func upperHex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
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
