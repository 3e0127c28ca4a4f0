package hub

import (
	"sync/atomic"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Observer is told how each device handshake ended (package metrics counts
// them). The hub calls it on the connection's goroutine: it must be quick.
type Observer interface {
	// Handshake is called once per websocket that reached the handshake,
	// with one of the Handshake* outcomes.
	Handshake(outcome string)
}

// The outcomes of a handshake, from the challenge to the session's start.
// They are a closed set: metric labels are made of them.
const (
	// HandshakeAccepted: the device is accepted; its session runs.
	HandshakeAccepted = "accepted"
	// HandshakePending: the key awaits an operator; the session runs.
	HandshakePending = "pending"
	// HandshakeRejected: the key is rejected (close 4003).
	HandshakeRejected = "rejected"
	// HandshakeRefused: a registration limit refused the device for now
	// (try later).
	HandshakeRefused = "refused"
	// HandshakeInvalid: the device's first frame was missing, late or
	// failed verification (the reason is counted with the rejections).
	HandshakeInvalid = "invalid"
	// HandshakeAborted: a newer session of the device took over, or the
	// cloud was shutting down, before this one started.
	HandshakeAborted = "aborted"
	// HandshakeError: the cloud failed (database, NATS).
	HandshakeError = "error"
)

// HandshakeOutcomes lists every outcome, for metrics that want each label
// to exist before it is first counted.
var HandshakeOutcomes = []string{HandshakeAccepted, HandshakePending, HandshakeRejected, HandshakeRefused,
	HandshakeInvalid, HandshakeAborted, HandshakeError}

type noObserver struct{}

func (noObserver) Handshake(string) {}

// handshake tracks one connection through its handshake: it counts in
// Hub.handshaking until end, which reports the outcome once.
type handshake struct {
	h    *Hub
	done atomic.Bool
}

func (h *Hub) beginHandshake() *handshake {
	h.handshaking.Add(1)
	return &handshake{h: h}
}

// end reports the outcome; only the first call counts.
func (hs *handshake) end(outcome string) {
	if !hs.done.CompareAndSwap(false, true) {
		return
	}
	hs.h.handshaking.Add(-1)
	hs.h.opts.Observer.Handshake(outcome)
}

func admissionOutcome(adm fleet.Admission) string {
	switch {
	case adm.Status == rpcproto.StatusRejected:
		return HandshakeRejected
	case adm.Refused:
		return HandshakeRefused
	case adm.Status == rpcproto.StatusAccepted:
		return HandshakeAccepted
	case adm.Status == rpcproto.StatusPending:
		return HandshakePending
	}
	return HandshakeError
}

// SessionStates counts this replica's device websockets by state:
// handshaking (between the upgrade and the session's start), pending (the
// key awaits an operator) and accepted. It walks the sessions under the
// hub's lock, so it is for scrapes, not for hot paths.
func (h *Hub) SessionStates() (handshaking, pending, accepted int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		if s.accepted.Load() {
			accepted++
		} else {
			pending++
		}
	}
	return int(h.handshaking.Load()), pending, accepted
}
