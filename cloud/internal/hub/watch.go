package hub

import (
	"context"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// The watch is the hub's one loop over every session it holds: each ping
// interval it refreshes their last_seen and, as a backstop for a lost NATS
// message, re-checks their keys' status — in one batch of queries for all
// of them, instead of a goroutine, a ticker and two queries per session
// (at 20,000 devices and a 20 s interval that was 2,000 queries a second
// of idle load, and a goroutine's stack per device).

// watchBatch bounds the ids one watch query carries.
const watchBatch = 5000

// startWatch starts the watch once, with the first session. h.mu is held.
func (h *Hub) startWatch() {
	if h.watchStarted {
		return
	}
	h.watchStarted = true
	h.watchWG.Go(h.watchLoop)
}

// stopWatch stops the watch and waits for it; safe to call twice.
func (h *Hub) stopWatch() {
	h.watchOnce.Do(func() { close(h.watchStop) })
	h.watchWG.Wait()
}

func (h *Hub) watchLoop() {
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-h.watchStop:
			return
		case <-h.baseCtx.Done():
			return
		case <-t.C:
		}
		h.watchAll(h.baseCtx)
	}
}

// watchAll touches every held session and acts on its key's status.
func (h *Hub) watchAll(ctx context.Context) {
	h.mu.Lock()
	ss := make([]*deviceSession, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	for len(ss) > 0 {
		n := min(len(ss), watchBatch)
		batch := ss[:n]
		ss = ss[n:]
		refs := make([]store.SessionRef, len(batch))
		ids := make([]int64, len(batch))
		for i, s := range batch {
			refs[i] = store.SessionRef{DeviceID: s.deviceID, Version: s.version}
			ids[i] = s.keySetID
		}
		h.svc.TouchMany(ctx, refs)
		st, err := h.svc.KeyStatuses(ctx, ids)
		if err != nil {
			continue
		}
		for _, s := range batch {
			switch st[s.keySetID] {
			case fleet.KeyRejected, fleet.KeyRevoked:
				s.close(rpcproto.CloseRejected, "key rejected")
			case fleet.KeyAccepted:
				if !s.accepted.Load() {
					s.goOwned(s.markAccepted)
				}
			}
		}
	}
}
