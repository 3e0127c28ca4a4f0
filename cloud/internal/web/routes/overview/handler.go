// Package overview is the dashboard's home: device counts, recent activity
// and recent calls, refreshed live.
package overview

import (
	"net/http"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Routes is the overview page.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{{Pattern: "GET /{$}", Role: fleet.RoleViewer, Handler: h.show}}
}

type handler struct{ svc *fleet.Service }

func (h *handler) show(w http.ResponseWriter, r *http.Request) error {
	a, org := app.Actor(r), app.ViewOrg(r)
	ctx := r.Context()
	m := Model{Page: app.NewPage(r, "Overview", "overview")}
	var err error
	if m.Counts, err = h.svc.CountsIn(ctx, a, org); err != nil {
		return err
	}
	if m.Activity, err = h.svc.AuditLogIn(ctx, a, org, fleet.AuditFilter{Limit: 12}); err != nil {
		return err
	}
	if m.Calls, err = h.svc.ListCallsIn(ctx, a, org, fleet.CallFilter{Limit: 8}); err != nil {
		return err
	}
	if app.IsHTMX(r) {
		return app.Render(w, r, View(m), "summary")
	}
	return app.Render(w, r, View(m))
}
