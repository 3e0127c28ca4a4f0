package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// Deployments: GET/POST /deployments, GET /deployments/{id} (with its
// members), POST /deployments/{id}/pause|resume|abort, and the fleet's
// version breakdown GET /ota/versions?name=NAME. The rules are fleet's
// (deployments.go); docs/api.md "Deployments" has the semantics.

func toDeployment(d fleet.Deployment) wire.Deployment {
	return wire.Deployment{ID: d.ID, OrgID: d.OrgID, Name: d.Name, Version: d.Version, ArtifactID: d.ArtifactID,
		Devices: d.Spec.DeviceIDs, Tag: d.Spec.Tag, Phases: d.Spec.Phases, MaxInFlight: d.Spec.MaxInFlight,
		FailureThreshold: d.Spec.FailureThreshold, MaxAttempts: d.Spec.MaxAttempts, CommitTimeout: d.Spec.CommitTimeout,
		NotBefore: d.Spec.NotBefore, State: d.State, Phase: d.Phase, Reason: d.Reason, CreatedBy: d.CreatedBy,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FinishedAt: d.FinishedAt, Total: d.Total, Counts: d.Counts}
}

func toMember(m fleet.DeploymentDevice) wire.DeploymentMember {
	return wire.DeploymentMember{DeviceID: m.DeviceID, Phase: m.Phase, Status: m.Status, Percent: m.Percent,
		Reason: m.Reason, Attempts: m.Attempts, RetryAt: m.RetryAt, UpdatedAt: m.UpdatedAt}
}

// specOf turns a request into a spec: an explicit 0 for failure_threshold
// or commit_timeout is fleet's -1 (0 there means the default).
func specOf(req wire.DeploymentRequest) (fleet.DeploymentSpec, error) {
	spec := fleet.DeploymentSpec{Name: req.Name, Version: req.Version, DeviceIDs: req.Devices, Tag: req.Tag,
		Phases: req.Phases, MaxInFlight: req.MaxInFlight, MaxAttempts: req.MaxAttempts}
	if req.MaxInFlight < 0 {
		return spec, invalid("max_in_flight must be 1 to %d", fleet.MaxMaxInFlight)
	}
	if req.MaxAttempts < 0 {
		return spec, invalid("max_attempts must be 1 to %d", fleet.MaxMaxAttempts)
	}
	if p := req.FailureThreshold; p != nil {
		if *p < 0 || *p > 100 {
			return spec, invalid("failure_threshold is a percent, 0 to 100")
		}
		spec.FailureThreshold = *p
		if *p == 0 {
			spec.FailureThreshold = -1
		}
	}
	if c := req.CommitTimeout; c != nil {
		if *c < 0 || *c > fleet.MaxCommitTimeout {
			return spec, invalid("commit_timeout must be 0 to %d seconds", fleet.MaxCommitTimeout)
		}
		spec.CommitTimeout = *c
		if *c == 0 {
			spec.CommitTimeout = -1
		}
	}
	if req.NotBefore != nil {
		if req.NotBefore.IsZero() {
			return spec, invalid("not_before must be a time (RFC 3339), or left out for now")
		}
		spec.NotBefore = *req.NotBefore
	}
	return spec, nil
}

// POST /deployments
func (h *handler) createDeployment(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req wire.DeploymentRequest
	if err := decodeJSON(w, r, h.opts.MaxBody, &req, false); err != nil {
		return err
	}
	spec, err := specOf(req)
	if err != nil {
		return err
	}
	d, err := h.svc.CreateDeployment(r.Context(), a, spec)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/deployments/"+strconv.FormatInt(d.ID, 10))
	writeJSON(w, http.StatusCreated, toDeployment(d))
	return nil
}

// GET /deployments?state=S&limit=N
func (h *handler) listDeployments(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	q, err := parseQuery(r, "state", "limit")
	if err != nil {
		return err
	}
	state, err := q.oneOf("state", fleet.DeploymentScheduled, fleet.DeploymentRunning, fleet.DeploymentPaused,
		fleet.DeploymentAborted, fleet.DeploymentCompleted)
	if err != nil {
		return err
	}
	limit, err := q.intIn("limit", 50, 1, 500)
	if err != nil {
		return err
	}
	list, err := h.svc.ListDeployments(r.Context(), a, fleet.DeploymentFilter{State: state, Limit: limit})
	if err != nil {
		return err
	}
	out := wire.DeploymentList{Items: make([]wire.Deployment, 0, len(list))}
	for _, d := range list {
		out.Items = append(out.Items, toDeployment(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func deploymentID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, invalid("deployment id must be a positive integer")
	}
	return id, nil
}

// GET /deployments/{id}
func (h *handler) getDeployment(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	id, err := deploymentID(r)
	if err != nil {
		return err
	}
	d, ms, err := h.svc.GetDeployment(r.Context(), a, id)
	if err != nil {
		return notFoundAs(err, "deployment %d not found", id)
	}
	out := wire.DeploymentDetail{Deployment: toDeployment(d), Members: make([]wire.DeploymentMember, 0, len(ms))}
	for _, m := range ms {
		out.Members = append(out.Members, toMember(m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deploymentFunc is PauseDeployment, ResumeDeployment or AbortDeployment.
type deploymentFunc = func(ctx context.Context, a fleet.Actor, id int64) (fleet.Deployment, error)

// deploymentAction serves POST /deployments/{id}/pause|resume|abort.
func (h *handler) deploymentAction(act deploymentFunc) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
		if _, err := parseQuery(r); err != nil {
			return err
		}
		if err := decodeJSON(w, r, h.opts.MaxBody, &struct{}{}, true); err != nil {
			return err
		}
		id, err := deploymentID(r)
		if err != nil {
			return err
		}
		d, err := act(r.Context(), a, id)
		if err != nil {
			return notFoundAs(err, "deployment %d not found", id)
		}
		writeJSON(w, http.StatusOK, toDeployment(d))
		return nil
	}
}

// GET /ota/versions?name=NAME
func (h *handler) otaVersions(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	q, err := parseQuery(r, "name")
	if err != nil {
		return err
	}
	name := q.str("name")
	if name == "" {
		return invalid("name is required: the artifact name to break the fleet down by")
	}
	vs, err := h.svc.OTAVersions(r.Context(), a, name)
	if err != nil {
		return err
	}
	out := wire.VersionList{Name: name, Items: make([]wire.VersionCount, 0, len(vs))}
	for _, v := range vs {
		out.Items = append(out.Items, wire.VersionCount{Version: v.Version, Devices: v.Devices})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
