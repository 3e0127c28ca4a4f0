// Package deployments is the OTA deployments pages: the list with each
// deployment's progress, the form that starts one, and a deployment's
// page (phases, failure threshold, per-device status with download
// progress, pause, resume and abort) that follows the rollout live: the
// fleet's EventDeployment and EventOTAStatus events make it fetch its
// "live" fragment again (assets/app.js paces them, at most one fetch per
// half second per event name, the last of a burst always fetched).
package deployments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Routes are the deployments pages and their forms.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{
		{Pattern: "GET /deployments", Role: fleet.RoleViewer, Handler: h.list},
		{Pattern: "GET /deployments/new", Role: fleet.RoleOperator, Handler: h.newForm},
		{Pattern: "POST /deployments", Role: fleet.RoleOperator, Handler: h.create},
		{Pattern: "GET /deployments/{id}", Role: fleet.RoleViewer, Handler: h.show},
		{Pattern: "POST /deployments/{id}/pause", Role: fleet.RoleOperator, Handler: h.pause},
		{Pattern: "POST /deployments/{id}/resume", Role: fleet.RoleOperator, Handler: h.resume},
		{Pattern: "POST /deployments/{id}/abort", Role: fleet.RoleOperator, Handler: h.abort},
	}
}

type handler struct{ svc *fleet.Service }

// States are the choices of the list's state filter.
var States = []string{fleet.DeploymentScheduled, fleet.DeploymentRunning, fleet.DeploymentPaused,
	fleet.DeploymentCompleted, fleet.DeploymentAborted}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	m := ListModel{Page: app.NewPage(r, "Deployments", "deployments"), State: r.URL.Query().Get("state")}
	if m.State != "" && !slices.Contains(States, m.State) {
		return app.Errorf(http.StatusBadRequest, "Unknown state %q.", m.State)
	}
	var err error
	m.Deployments, err = h.svc.ListDeployments(r.Context(), app.Actor(r), fleet.DeploymentFilter{State: m.State, Limit: ListLimit})
	if err != nil {
		return err
	}
	if org := app.ViewOrg(r); org > 0 {
		m.Deployments = slices.DeleteFunc(m.Deployments, func(d fleet.Deployment) bool { return d.OrgID != org })
	}
	m.ShowOrg = app.Actor(r).Role == fleet.RoleSuper && app.ViewOrg(r) == 0
	if app.IsHTMX(r) {
		return app.Render(w, r, List(m), "list")
	}
	return app.Render(w, r, List(m))
}

// newForm is the form, its artifact preselected from ?name=&version=.
func (h *handler) newForm(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var f Form
	if n, v := q.Get("name"), q.Get("version"); n != "" && v != "" {
		f.Artifact = n + "@" + v
	}
	f.Tag = strings.TrimSpace(q.Get("tag"))
	return h.renderForm(w, r, f, http.StatusOK, "")
}

func (h *handler) renderForm(w http.ResponseWriter, r *http.Request, f Form, status int, msg string) error {
	m := FormModel{Page: app.NewPage(r, "New deployment", "deployments"), Form: f}
	m.Page.Error = msg
	arts, err := h.svc.ListArtifacts(r.Context(), app.Actor(r), fleet.ArtifactFilter{})
	if err != nil {
		return err
	}
	org := app.Actor(r).OrgID
	for _, a := range arts {
		if a.OrgID == org { // a deployment is of the actor's organisation
			m.Artifacts = append(m.Artifacts, a)
		}
	}
	return app.RenderStatus(w, r, status, NewForm(m))
}

// create starts a deployment from the form. A refusal shows the form
// again with the values typed and the reason; nothing is created.
func (h *handler) create(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return app.FromFleet(err)
	}
	f := formOf(r)
	spec, msg := f.Spec()
	if msg != "" {
		return h.renderForm(w, r, f, http.StatusUnprocessableEntity, msg)
	}
	d, err := h.svc.CreateDeployment(r.Context(), app.Actor(r), spec)
	if err != nil {
		pub, ok := fleet.PublicMessage(err)
		if !ok {
			return err
		}
		status := http.StatusUnprocessableEntity
		if errors.Is(err, fleet.ErrForbidden) {
			status = http.StatusForbidden
		}
		return h.renderForm(w, r, f, status, capital(pub))
	}
	return app.Redirect(w, r, Path(d.ID), fmt.Sprintf("Deployment %d of %s %s created.", d.ID, d.Name, d.Version))
}

func deploymentID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, app.Errorf(http.StatusNotFound, "Not found.")
	}
	return id, nil
}

func (h *handler) show(w http.ResponseWriter, r *http.Request) error {
	id, err := deploymentID(r)
	if err != nil {
		return err
	}
	status := r.URL.Query().Get("status")
	if status != "" && !slices.Contains(DeviceStatuses, status) {
		return app.Errorf(http.StatusBadRequest, "Unknown status %q.", status)
	}
	d, devs, err := h.svc.GetDeployment(r.Context(), app.Actor(r), id)
	if err != nil {
		return err
	}
	if org := app.ViewOrg(r); org > 0 && d.OrgID != org {
		return app.Errorf(http.StatusNotFound, "Not found.")
	}
	m := newModel(app.NewPage(r, fmt.Sprintf("Deployment %d", d.ID), "deployments"), d, devs, status)
	if app.IsHTMX(r) {
		return app.Render(w, r, Show(m), "live")
	}
	return app.Render(w, r, Show(m))
}

func (h *handler) pause(w http.ResponseWriter, r *http.Request) error {
	return h.act(w, r, h.svc.PauseDeployment, "Paused: nothing new is sent; the devices in flight go on and report.")
}

func (h *handler) resume(w http.ResponseWriter, r *http.Request) error {
	return h.act(w, r, h.svc.ResumeDeployment, "Resumed.")
}

// abort asks first (the page's Abort button posts without confirm).
func (h *handler) abort(w http.ResponseWriter, r *http.Request) error {
	if r.PostFormValue("confirm") != "yes" {
		id, err := deploymentID(r)
		if err != nil {
			return err
		}
		d, _, err := h.svc.GetDeployment(r.Context(), app.Actor(r), id)
		if err != nil {
			return err
		}
		return app.Render(w, r, ConfirmAbort(ConfirmModel{Page: app.NewPage(r, "Abort deployment", "deployments"), Deployment: d}))
	}
	return h.act(w, r, h.svc.AbortDeployment, "Aborted: devices not started never start; devices in flight are told to stop and roll back.")
}

// act runs pause, resume or abort and goes back to the deployment's page;
// a refusal (e.g. resuming a completed deployment) is shown there.
func (h *handler) act(w http.ResponseWriter, r *http.Request, do func(ctx context.Context, a fleet.Actor, id int64) (fleet.Deployment, error), done string) error {
	id, err := deploymentID(r)
	if err != nil {
		return err
	}
	if _, err := do(r.Context(), app.Actor(r), id); err != nil {
		pub, ok := fleet.PublicMessage(err)
		if !ok || !(errors.Is(err, fleet.ErrConflict) || errors.Is(err, fleet.ErrInvalid)) {
			return err
		}
		d, devs, gerr := h.svc.GetDeployment(r.Context(), app.Actor(r), id)
		if gerr != nil {
			return gerr
		}
		m := newModel(app.NewPage(r, fmt.Sprintf("Deployment %d", d.ID), "deployments"), d, devs, "")
		m.Page.Error = "Nothing was changed: " + strings.TrimSuffix(pub, ".") + "."
		return app.RenderStatus(w, r, http.StatusConflict, Show(m))
	}
	return app.Redirect(w, r, Path(id), done)
}

// formOf reads the form's fields.
func formOf(r *http.Request) Form {
	v := func(k string) string { return strings.TrimSpace(r.PostForm.Get(k)) }
	return Form{Artifact: v("artifact"), Devices: v("devices"), Tag: v("tag"), Phases: v("phases"),
		MaxInFlight: v("max_in_flight"), FailureThreshold: v("failure_threshold"), MaxAttempts: v("max_attempts"),
		CommitTimeout: v("commit_timeout"), NotBefore: v("not_before")}
}

// Spec turns the form into a DeploymentSpec, or says what is wrong with
// it (the fleet checks the values again, and their ranges).
func (f Form) Spec() (fleet.DeploymentSpec, string) {
	var s fleet.DeploymentSpec
	name, version, ok := strings.Cut(f.Artifact, "@")
	if !ok || name == "" || version == "" {
		return s, "Choose the artifact version to deploy."
	}
	s.Name, s.Version = name, version
	s.DeviceIDs = splitIDs(f.Devices)
	s.Tag = f.Tag
	if len(s.DeviceIDs) == 0 && s.Tag == "" {
		return s, "Name the devices (ids, separated by commas or spaces), a tag, or both."
	}
	if f.Phases != "" {
		for _, p := range strings.FieldsFunc(f.Phases, func(r rune) bool { return r == ',' || r == ' ' || r == '%' }) {
			n, err := strconv.Atoi(p)
			if err != nil {
				return s, fmt.Sprintf("Phases are cumulative percents separated by commas, e.g. 10,100 (not %q).", p)
			}
			s.Phases = append(s.Phases, n)
		}
	}
	var msg string
	num := func(field, text string, dst *int) {
		if msg != "" || text == "" {
			return
		}
		n, err := strconv.Atoi(text)
		if err != nil {
			msg = fmt.Sprintf("%s must be a whole number (not %q).", field, text)
			return
		}
		*dst = n
	}
	num("Max in flight", f.MaxInFlight, &s.MaxInFlight)
	num("Failure threshold", f.FailureThreshold, &s.FailureThreshold)
	num("Max attempts", f.MaxAttempts, &s.MaxAttempts)
	if msg != "" {
		return s, msg
	}
	if f.FailureThreshold != "" && s.FailureThreshold == 0 {
		s.FailureThreshold = -1 // 0 typed: any final failure pauses (fleet's 0 is the default)
	} else if s.FailureThreshold < 0 {
		return s, "Failure threshold is a percent from 0 to 100."
	}
	if f.MaxInFlight != "" && s.MaxInFlight <= 0 {
		return s, "Max in flight must be at least 1 (leave it empty for the default)."
	}
	if f.MaxAttempts != "" && s.MaxAttempts <= 0 {
		return s, "Max attempts must be at least 1 (leave it empty for the default)."
	}
	if f.CommitTimeout != "" {
		secs, err := parseSeconds(f.CommitTimeout)
		if err != nil {
			return s, fmt.Sprintf("Commit timeout is seconds or a duration like 5m (not %q).", f.CommitTimeout)
		}
		if secs == 0 {
			return s, "Commit timeout must be at least 1s (leave it empty for the default)."
		}
		s.CommitTimeout = secs
	}
	if f.NotBefore != "" {
		t, err := parseTime(f.NotBefore)
		if err != nil {
			return s, fmt.Sprintf("Not before is a UTC time like 2026-01-02T15:04 (not %q).", f.NotBefore)
		}
		s.NotBefore = t
	}
	return s, ""
}

func splitIDs(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// parseSeconds reads "300" or a Go duration ("5m", "90s") as whole seconds.
func parseSeconds(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, errors.New("negative")
		}
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d%time.Second != 0 || d > 1000*24*time.Hour {
		return 0, errors.New("not whole seconds")
	}
	return int(d / time.Second), nil
}

// parseTime reads a datetime-local value (taken as UTC) or RFC 3339.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

func capital(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
