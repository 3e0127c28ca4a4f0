// Package pending is the pending keys page: one row per pending key set,
// with its fingerprint and a warning when a known device presents a new
// key; accept or reject one or many at once. Every accept names the
// fingerprint the page showed, so that a key that arrived after the page
// was drawn is never accepted by a click on another. Below them, the
// rejected keys, with who rejected each and when, and a button to accept
// one again (a rejection is reversible; a revocation is not). A pending
// row's accept accepts a key only while it is pending: a key someone
// rejected since the page was drawn stays rejected.
package pending

import (
	"fmt"
	"net/http"
	"net/url"
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
	if m.Rejected, m.RejectedTotal, err = h.svc.RejectedKeys(r.Context(), app.Actor(r), app.ViewOrg(r), Limit); err != nil {
		return err
	}
	if app.IsHTMX(r) {
		return app.Render(w, r, View(m), "keys")
	}
	return app.Render(w, r, View(m))
}

// maxBatch bounds how many devices one form decides.
const maxBatch = 500

// Target is a device to decide on, and for an accept the fingerprint of the
// key the operator was shown ("" for none: the device's only pending key).
type Target struct {
	ID          string
	Fingerprint string
	// Rejected means the page showed the key rejected: accept it even
	// though it is not pending. Otherwise only a pending key is accepted.
	Rejected bool
}

// targetValue is the form value naming a key set: "<device id>:<fingerprint>"
// (a device id has no colon). A bare device id names no key.
func targetValue(k fleet.PendingKey) string { return k.DeviceID + ":" + k.Fingerprint }

func parseTarget(v string) Target {
	id, fp, _ := strings.Cut(v, ":")
	return Target{ID: id, Fingerprint: fp}
}

// acceptAction is the formaction of a row's accept button: the row's
// fingerprint rides in the query, the button's value names the device.
func acceptAction(k fleet.PendingKey) string {
	return "/pending?" + url.Values{"fingerprint": {k.Fingerprint}}.Encode()
}

// acceptRejectedAction is acceptAction for a row of the rejected keys: the
// query also says that the key shown was rejected.
func acceptRejectedAction(k fleet.RejectedKey) string {
	return "/pending?" + url.Values{"fingerprint": {k.Fingerprint}, "from": {"rejected"}}.Encode()
}

// decide accepts or rejects: act is "accept" or "reject" for the ticked
// key sets (id values "<device>:<fingerprint>"), or "accept:<id>" /
// "reject:<id>" for one row's button, whose fingerprint is the query's.
func (h *handler) decide(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return app.FromFleet(err)
	}
	act := r.PostForm.Get("act")
	var targets []Target
	if verb, id, ok := strings.Cut(act, ":"); ok {
		act = verb
		q := r.URL.Query()
		targets = []Target{{ID: id, Fingerprint: q.Get("fingerprint"), Rejected: q.Get("from") == "rejected"}}
	} else {
		for _, v := range r.PostForm["id"] {
			targets = append(targets, parseTarget(v))
		}
	}
	if act != "accept" && act != "reject" {
		return app.Errorf(http.StatusBadRequest, "Choose accept or reject.")
	}
	if len(targets) == 0 {
		return app.Redirect(w, r, "/pending", "Tick at least one key.")
	}
	if len(targets) > maxBatch {
		return app.Errorf(http.StatusBadRequest, "At most %d keys at once.", maxBatch)
	}
	msg, err := Decide(r, h.svc, act, targets)
	if err != nil {
		return err
	}
	return app.Redirect(w, r, "/pending", msg)
}

// Decide accepts or rejects devices one by one and says what happened. An
// accept names the fingerprint of each target, so only the key shown is
// accepted, and only while it is pending unless the target says the page
// showed it rejected; a reject rejects every pending key of the device. A
// device the actor may not see (another organisation's, or nobody's)
// refuses the whole batch with ErrNotFound before anything is decided, so
// that a batch mixing one's own devices with others' changes nothing and
// tells nothing about the others; a device whose state
// does not allow it (nothing pending, several pending keys and none named,
// the named key no longer pending) is reported with fleet's public message
// and skipped. A device ticked twice (two of its keys) is decided once: the
// first accept rejects its other pending keys.
func Decide(r *http.Request, svc *fleet.Service, act string, targets []Target) (string, error) {
	for _, t := range targets {
		if _, err := svc.GetDevice(r.Context(), app.Actor(r), t.ID); err != nil {
			return "", err
		}
	}
	var done, skipped []string
	seen := map[string]bool{}
	for _, t := range targets {
		if seen[t.ID] {
			skipped = append(skipped, fmt.Sprintf("%s: one key per device at a time", t.ID))
			continue
		}
		seen[t.ID] = true
		var err error
		what := t.ID
		if act == "accept" {
			var k fleet.KeySet
			accept := svc.AcceptPendingKey
			if t.Rejected {
				accept = svc.AcceptKey
			}
			if k, err = accept(r.Context(), app.Actor(r), t.ID, t.Fingerprint); err == nil {
				what = fmt.Sprintf("%s (%s)", t.ID, k.Fingerprint)
			}
		} else {
			err = svc.Reject(r.Context(), app.Actor(r), t.ID)
		}
		switch {
		case err == nil:
			done = append(done, what)
		case isConflict(err):
			if msg, ok := fleet.PublicMessage(err); ok {
				skipped = append(skipped, msg)
			} else {
				skipped = append(skipped, fmt.Sprintf("nothing to %s for %s", act, t.ID))
			}
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
		msg += fmt.Sprintf(" Not %s: %s.", strings.ToLower(past), strings.Join(skipped, "; "))
	}
	return strings.TrimSpace(msg), nil
}
