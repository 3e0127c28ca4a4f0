// Package audit is the audit log page: who did what, when, with what
// outcome; filterable by actor, action and target.
package audit

import (
	"net/http"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Routes is the audit log page.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{{Pattern: "GET /audit", Role: fleet.RoleViewer, Handler: h.list}}
}

type handler struct{ svc *fleet.Service }

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := fleet.AuditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		Target: strings.TrimSpace(q.Get("target")), Limit: Limit}
	if len(f.Actor) > 256 || len(f.Action) > 128 || len(f.Target) > 256 {
		return app.Errorf(http.StatusBadRequest, "The filter is too long.")
	}
	m := Model{Page: app.NewPage(r, "Audit log", "audit"), Filter: f}
	m.ShowOrg = app.Actor(r).Role == fleet.RoleSuper && app.ViewOrg(r) == 0
	var err error
	if m.Entries, err = h.svc.AuditLogIn(r.Context(), app.Actor(r), app.ViewOrg(r), f); err != nil {
		return err
	}
	return app.Render(w, r, View(m))
}
