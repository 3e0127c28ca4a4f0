// Package pending is the pending keys page: devices waiting for an
// operator, with key fingerprints and a warning when a known device
// presents a new key; accept or reject one or many at once.
package pending

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Routes are the list and the accept/reject form.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{
		{Pattern: "GET /pending", Role: fleet.RoleViewer, Handler: h.list},
		{Pattern: "POST /pending", Role: fleet.RoleOperator, Handler: h.decide},
	}
}

type handler struct{ svc *fleet.Service }

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	m := Model{Page: app.NewPage(r, "Pending keys", "pending")}
	var err error
	if m.Keys, m.Total, err = h.svc.PendingKeys(r.Context(), app.Actor(r), app.ViewOrg(r), Limit); err != nil {
		return err
	}
	if app.IsHTMX(r) {
		return app.Render(w, r, View(m), "keys")
	}
	return app.Render(w, r, View(m))
}

// maxBatch bounds how many devices one form decides.
const maxBatch = 500

// decide accepts or rejects: act is "accept" or "reject" for the ticked
// ids, or "accept:<id>" / "reject:<id>" for one row's button.
func (h *handler) decide(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return app.FromFleet(err)
	}
	act, ids := r.PostForm.Get("act"), r.PostForm["id"]
	if verb, id, ok := strings.Cut(act, ":"); ok {
		act, ids = verb, []string{id}
	}
	if act != "accept" && act != "reject" {
		return app.Errorf(http.StatusBadRequest, "Choose accept or reject.")
	}
	if len(ids) == 0 {
		return app.Redirect(w, r, "/pending", "Tick at least one device.")
	}
	if len(ids) > maxBatch {
		return app.Errorf(http.StatusBadRequest, "At most %d devices at once.", maxBatch)
	}
	msg, err := Decide(r, h.svc, act, ids)
	if err != nil {
		return err
	}
	return app.Redirect(w, r, "/pending", msg)
}

// Decide accepts or rejects devices one by one and says what happened. A
// device the actor may not see or change stops the batch with its error,
// so that nothing about other organisations' devices leaks; a device that
// has nothing pending is reported and skipped.
func Decide(r *http.Request, svc *fleet.Service, act string, ids []string) (string, error) {
	var done, skipped []string
	for _, id := range ids {
		var err error
		if act == "accept" {
			err = svc.Accept(r.Context(), app.Actor(r), id)
		} else {
			err = svc.Reject(r.Context(), app.Actor(r), id)
		}
		switch {
		case err == nil:
			done = append(done, id)
		case isConflict(err):
			skipped = append(skipped, id)
		default:
			return "", err
		}
	}
	past := map[string]string{"accept": "Accepted", "reject": "Rejected"}[act]
	msg := ""
	if len(done) > 0 {
		msg = fmt.Sprintf("%s %s.", past, strings.Join(done, ", "))
	}
	if len(skipped) > 0 {
		msg += fmt.Sprintf(" Nothing to %s for %s.", act, strings.Join(skipped, ", "))
	}
	return strings.TrimSpace(msg), nil
}
