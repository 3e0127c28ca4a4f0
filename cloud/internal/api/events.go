package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// GET /events streams the organisation's live events as server-sent events:
// every event of every replica (fleet.Subscribe), a comment line as a
// heartbeat, until the client goes or options.MaxEventStream passes. If
// the service drops a subscriber that cannot keep up, the stream ends too;
// the client reconnects (the "retry" field says after how long).
func (h *handler) events(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	// The deadline also serves fleet.Subscribe, which needs one to flush
	// its NATS subscription.
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.MaxEventStream)
	defer cancel()
	ch, err := h.svc.Subscribe(ctx, a)
	if err != nil {
		return err
	}
	s := &stream{w: w, rc: http.NewResponseController(w), contentType: "text/event-stream", writeTimeout: h.opts.WriteTimeout}
	// The first comment tells the client the subscription is live.
	s.write([]byte("retry: 3000\n: subscribed\n\n"))
	hb := time.NewTicker(h.opts.Heartbeat)
	defer hb.Stop()
	for !s.broken {
		select {
		case <-ctx.Done():
			return nil
		case <-hb.C:
			s.write([]byte(": heartbeat\n\n"))
		case ev, ok := <-ch:
			if !ok {
				h.log.InfoContext(ctx, "api: event subscriber dropped or closed", "actor", a.Name())
				return nil
			}
			s.write(sseFrame(ev))
		}
	}
	return nil
}

// sseFrame encodes one event. JSON from json.Marshal holds no newline, so
// one data line carries it.
func sseFrame(ev fleet.Event) []byte {
	b, err := json.Marshal(toEvent(ev))
	if err != nil {
		panic("api: encoding event: " + err.Error())
	}
	var sb strings.Builder
	sb.WriteString("event: ")
	sb.WriteString(strings.NewReplacer("\n", "", "\r", "").Replace(ev.Type))
	sb.WriteString("\ndata: ")
	sb.Write(b)
	sb.WriteString("\n\n")
	return []byte(sb.String())
}
