// Package events streams fleet events to the dashboard as server-sent
// events (GET /events). The browser turns each into a DOM event that htmx
// elements listen for (see assets/app.js) and fetch their part again: the
// stream says that something changed, the pages say what.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/login"
)

// Routes is the event stream.
func Routes(svc *fleet.Service, logger *slog.Logger) []app.Route {
	h := &handler{svc: svc, log: logger, heartbeat: 15 * time.Second, writeTimeout: 10 * time.Second, maxLife: 30 * time.Minute}
	return []app.Route{{Pattern: "GET /events", Role: fleet.RoleViewer, Handler: h.stream}}
}

type handler struct {
	svc *fleet.Service
	log *slog.Logger
	// heartbeat is how often a comment keeps proxies from closing an idle
	// stream, and how often the session is checked again, so a stream
	// ends soon after its session does.
	heartbeat time.Duration
	// writeTimeout bounds each write: a browser that stops reading is cut off.
	writeTimeout time.Duration
	// maxLife ends every stream after a while; EventSource reconnects, and
	// the new stream is authenticated afresh.
	maxLife time.Duration
}

// wireEvent is what the browser gets: enough to know what to refresh.
type wireEvent struct {
	Type     string    `json:"type"`
	DeviceID string    `json:"device_id,omitempty"`
	At       time.Time `json:"at"`
	// Deployment is the deployment an EventDeployment is about, so that
	// its page refreshes for its own events only.
	Deployment int64 `json:"deployment,omitempty"`
}

// deploymentOf is the "deployment" of an EventDeployment's data (0 for
// any other event).
func deploymentOf(e fleet.Event) int64 {
	if e.Type != fleet.EventDeployment || len(e.Data) == 0 {
		return 0
	}
	var d struct {
		Deployment int64 `json:"deployment"`
	}
	json.Unmarshal(e.Data, &d)
	return d.Deployment
}

func (h *handler) stream(w http.ResponseWriter, r *http.Request) error {
	sess := app.SessionFrom(r.Context())
	// The deadline ends the stream after maxLife (and NATS needs one to
	// confirm the subscription).
	ctx, cancel := context.WithTimeout(r.Context(), h.maxLife)
	defer cancel()
	ch, err := h.svc.Subscribe(ctx, sess.Actor)
	if err != nil {
		return err
	}
	org := app.ViewOrg(r)
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(s string) bool {
		rc.SetWriteDeadline(time.Now().Add(h.writeTimeout))
		if _, err := fmt.Fprint(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: 3000\n\n") {
		return nil
	}
	beat := time.NewTicker(h.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
			if _, err := h.svc.AuthenticateSession(ctx, login.Cookies{}.Session(r)); err != nil {
				write("event: ended\ndata: {}\n\n")
				return nil
			}
			if !write(": keep-alive\n\n") {
				return nil
			}
		case e, ok := <-ch:
			if !ok {
				return nil // the service closed or dropped us; the browser reconnects
			}
			if org > 0 && e.OrgID != org {
				continue
			}
			b, _ := json.Marshal(wireEvent{Type: e.Type, DeviceID: e.DeviceID, At: e.At, Deployment: deploymentOf(e)})
			if !write("data: " + string(b) + "\n\n") {
				return nil
			}
		}
	}
}
