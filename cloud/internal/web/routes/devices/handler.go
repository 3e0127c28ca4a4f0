// Package devices is the device list: filter by status, online, tag and
// text, paginated, with online dots that change live.
package devices

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Routes is the device list.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{{Pattern: "GET /devices", Role: fleet.RoleViewer, Handler: h.list}}
}

type handler struct{ svc *fleet.Service }

func parseFilter(r *http.Request) (Filter, error) {
	q := r.URL.Query()
	f := Filter{Status: q.Get("status"), Online: q.Get("online"), Tag: strings.TrimSpace(q.Get("tag")),
		Text: strings.TrimSpace(q.Get("q")), Page: 1}
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return f, app.Errorf(http.StatusBadRequest, "Unknown status %q.", f.Status)
	}
	if f.Online != "" && f.Online != "yes" && f.Online != "no" {
		return f, app.Errorf(http.StatusBadRequest, "online is yes or no.")
	}
	if len(f.Tag) > 64 || len(f.Text) > 128 {
		return f, app.Errorf(http.StatusBadRequest, "The filter is too long.")
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100000 {
			return f, app.Errorf(http.StatusBadRequest, "Bad page number.")
		}
		f.Page = n
	}
	return f, nil
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilter(r)
	if err != nil {
		return err
	}
	ff := fleet.DeviceFilter{Status: f.Status, Tag: f.Tag, Text: f.Text, Limit: PageSize, Offset: (f.Page - 1) * PageSize}
	if f.Online != "" {
		on := f.Online == "yes"
		ff.Online = &on
	}
	m := Model{Page: app.NewPage(r, "Devices", "devices"), Filter: f}
	m.ShowOrg = app.Actor(r).Role == fleet.RoleSuper && app.ViewOrg(r) == 0
	m.Devices, m.Total, err = h.svc.ListDevicesIn(r.Context(), app.Actor(r), app.ViewOrg(r), ff)
	if err != nil {
		return err
	}
	m.Pages = (m.Total + PageSize - 1) / PageSize
	if app.IsHTMX(r) {
		return app.Render(w, r, View(m), "table")
	}
	return app.Render(w, r, View(m))
}
