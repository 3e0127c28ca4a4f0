// Package audit is the audit log page: who did what, when, with what
// outcome; filterable by actor, action and target, and paged by keyset
// (the id of the last row shown), so that pages neither shift nor repeat
// while new rows are written and an old page costs what the first does.
package audit

import (
	"net/http"
	"strconv"
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

// cursor reads a page cursor: absent is 0, else a row id > 0.
func cursor(q string) (int64, bool) {
	if q == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(q, 10, 64)
	return n, err == nil && n > 0
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := fleet.AuditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		Target: strings.TrimSpace(q.Get("target")), Limit: PageSize + 1}
	if len(f.Actor) > 256 || len(f.Action) > 128 || len(f.Target) > 256 {
		return app.Errorf(http.StatusBadRequest, "The filter is too long.")
	}
	var ok1, ok2 bool
	f.Before, ok1 = cursor(q.Get("before"))
	f.After, ok2 = cursor(q.Get("after"))
	if !ok1 || !ok2 || (f.Before > 0 && f.After > 0) {
		return app.Errorf(http.StatusBadRequest, "A page is named by one row id: before=N or after=N.")
	}
	m := Model{Page: app.NewPage(r, "Audit log", "audit"), Filter: f}
	m.ShowOrg = app.Actor(r).Role == fleet.RoleSuper && app.ViewOrg(r) == 0
	es, err := h.svc.AuditLogIn(r.Context(), app.Actor(r), app.ViewOrg(r), f)
	if err != nil {
		return err
	}
	m.Entries, m.Older, m.Newer = page(es, f)
	return app.Render(w, r, View(m))
}

// page trims a page fetched with one row too many (newest first) and
// returns the cursors of the pages around it (0: none). Rows older than
// the page exist when the extra row came back, or when the page was asked
// for as newer than a row (that row is older); newer rows exist when the
// page was asked for as older than a row, or as newer than one and the
// extra (newest) row came back.
func page(es []fleet.AuditEntry, f fleet.AuditFilter) (rows []fleet.AuditEntry, older, newer int64) {
	more := len(es) > PageSize
	switch {
	case f.After > 0 && more:
		es = es[1:]
	case more:
		es = es[:PageSize]
	}
	if len(es) == 0 {
		return es, 0, 0
	}
	if more || f.After > 0 {
		older = es[len(es)-1].ID
	}
	if f.Before > 0 || (f.After > 0 && more) {
		newer = es[0].ID
	}
	return es, older, newer
}
