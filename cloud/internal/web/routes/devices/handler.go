// Package devices is the device list: filter by status, online, tag and
// text, paginated, with online dots that change live; tick devices to add
// or remove a tag on all of them or to decommission them (admins, after a
// confirmation). A bulk action changes every device ticked or, when one of
// them may not be changed, none, and says which and why.
package devices

import (
	"errors"
	"fmt"
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
	return []app.Route{
		{Pattern: "GET /devices", Role: fleet.RoleViewer, Handler: h.list},
		{Pattern: "POST /devices", Role: fleet.RoleOperator, Handler: h.bulk},
	}
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
	m, err := h.load(r, f)
	if err != nil {
		return err
	}
	if app.IsHTMX(r) {
		return app.Render(w, r, View(m), "table")
	}
	return app.Render(w, r, View(m))
}

// load fills the page for filter f.
func (h *handler) load(r *http.Request, f Filter) (Model, error) {
	ff := fleet.DeviceFilter{Status: f.Status, Tag: f.Tag, Text: f.Text, Limit: PageSize, Offset: (f.Page - 1) * PageSize}
	if f.Online != "" {
		on := f.Online == "yes"
		ff.Online = &on
	}
	m := Model{Page: app.NewPage(r, "Devices", "devices"), Filter: f}
	m.ShowOrg = app.Actor(r).Role == fleet.RoleSuper && app.ViewOrg(r) == 0
	var err error
	m.Devices, m.Total, err = h.svc.ListDevicesIn(r.Context(), app.Actor(r), app.ViewOrg(r), ff)
	if err != nil {
		return m, err
	}
	m.Pages = (m.Total + PageSize - 1) / PageSize
	return m, nil
}

// bulk runs a bulk action on the devices ticked: act "tag-add" or
// "tag-remove" with the tag of the field "bulk_tag"; "decommission" shows
// what would be decommissioned and asks again; "decommission-confirmed"
// does it. A success goes back to the list with a message; a refusal shows
// the list again with the reason and the same boxes ticked, having changed
// nothing.
func (h *handler) bulk(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilter(r)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return app.FromFleet(err)
	}
	ids := r.PostForm["id"]
	act, tag := r.PostForm.Get("act"), strings.TrimSpace(r.PostForm.Get("bulk_tag"))
	back := Model{Filter: f}.URL(f.Page)
	switch act {
	case "tag-add", "tag-remove":
		add, remove := []string{tag}, []string(nil)
		if act == "tag-remove" {
			add, remove = nil, []string{tag}
		}
		if tag == "" {
			add, remove = nil, nil
		}
		if _, err := h.svc.TagDevices(r.Context(), app.Actor(r), ids, add, remove); err != nil {
			return h.refuse(w, r, f, ids, tag, err)
		}
		verb := map[string]string{"tag-add": "Added the tag %q to %s.", "tag-remove": "Removed the tag %q from %s."}[act]
		return app.Redirect(w, r, back, fmt.Sprintf(verb, tag, countDevices(ids)))
	case "decommission":
		if len(ids) == 0 || len(ids) > fleet.MaxBulk {
			return h.refuse(w, r, f, ids, tag, h.svc.DecommissionDevices(r.Context(), app.Actor(r), ids))
		}
		m := ConfirmModel{Page: app.NewPage(r, "Decommission devices", "devices"), IDs: unique(ids), Back: back}
		return app.Render(w, r, Confirm(m))
	case "decommission-confirmed":
		if err := h.svc.DecommissionDevices(r.Context(), app.Actor(r), ids); err != nil {
			return h.refuse(w, r, f, ids, tag, err)
		}
		return app.Redirect(w, r, back, fmt.Sprintf("Decommissioned %s: their keys are revoked and their sessions closed.", countDevices(ids)))
	}
	return app.Errorf(http.StatusBadRequest, "Choose an action.")
}

// refuse shows the list again with why nothing was changed, keeping the
// selection. Errors without a message for people are the page's error.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, f Filter, ids []string, tag string, err error) error {
	msg, ok := fleet.PublicMessage(err)
	if !ok {
		return err
	}
	status := http.StatusUnprocessableEntity
	switch {
	case errors.Is(err, fleet.ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, fleet.ErrNotFound):
		status = http.StatusNotFound
	}
	m, lerr := h.load(r, f)
	if lerr != nil {
		return lerr
	}
	m.Page.Error, m.BulkTag = msg, tag
	m.Selected = map[string]bool{}
	for _, id := range ids {
		m.Selected[id] = true
	}
	return app.RenderStatus(w, r, status, View(m))
}

func unique(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// countDevices names a few devices, or counts many.
func countDevices(ids []string) string {
	ids = unique(ids)
	switch {
	case len(ids) == 1:
		return "device " + ids[0]
	case len(ids) <= 5:
		return fmt.Sprintf("%d devices (%s)", len(ids), strings.Join(ids, ", "))
	}
	return fmt.Sprintf("%d devices", len(ids))
}
