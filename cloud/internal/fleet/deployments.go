package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/artifacts"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/cloud/internal/tags"
)

// This file is OTA deployments: an artifact version rolled out to devices
// named by id or by tag (dynamic), in phases, with a maximum in flight, a
// failure threshold that pauses the deployment by itself, bounded retries
// per device, pause, resume and abort. The engine (deployments_engine.go)
// moves them forward from what is in PostgreSQL only, so several replicas
// may run it and a restarted cloud continues where it was.

// Deployment states.
const (
	DeploymentScheduled = "scheduled"
	DeploymentRunning   = "running"
	DeploymentPaused    = "paused"
	DeploymentAborted   = "aborted"
	DeploymentCompleted = "completed"
)

// Per-device statuses of a deployment's members.
const (
	DevPending        = "pending"
	DevSent           = "sent"
	DevDownloading    = "downloading"
	DevInstalling     = "installing"
	DevAwaitingCommit = "awaiting_commit"
	DevSucceeded      = "succeeded"
	DevFailed         = "failed"
	DevRolledBack     = "rolled_back"
	DevAborted        = "aborted"
)

// EventDeployment is published for every change of a deployment or of one
// of its members. Data: {"deployment": ID, "state": ..., "device": ...,
// "status": ..., "percent": ...} (device, status and percent for a
// member's change).
const EventDeployment = "deployment"

// DeploymentSpec is what an operator asks for.
type DeploymentSpec struct {
	Name, Version string   // the artifact (must exist in the actor's org)
	DeviceIDs     []string // explicit devices (may be empty if Tag is set)
	Tag           string   // dynamic: every device with the tag, now or later while the deployment runs
	// Phases are cumulative percents, strictly increasing, the last 100.
	// nil or empty means [100].
	Phases []int
	// MaxInFlight bounds the members between sent and awaiting_commit at
	// once. 0 means 50; at most 10000.
	MaxInFlight int
	// FailureThreshold is the percent (0..100) of a phase's members that
	// may end failed for good before the deployment pauses itself (it
	// pauses when more than that have). 0 means the default, 20; -1 asks
	// for 0 (any final failure pauses).
	FailureThreshold int
	// MaxAttempts bounds the attempts per device, 1..10. 0 means 3. A
	// device failing MaxAttempts times is set aside (failed or
	// rolled_back, final).
	MaxAttempts int
	// CommitTimeout is the seconds passed to ota.update, 0..86400. 0
	// means 300; -1 asks for 0 (the device commits as soon as it has
	// switched).
	CommitTimeout int
	// NotBefore is when the deployment may start. Zero means now.
	NotBefore time.Time
}

// Deployment is a deployment as the API and the dashboard show it.
type Deployment struct {
	ID, OrgID     int64
	Name, Version string
	ArtifactID    int64
	Spec          DeploymentSpec
	State         string
	Phase         int    // index into Spec.Phases
	Reason        string // why paused or aborted
	CreatedBy     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
	Total         int
	Counts        map[string]int // per member status
}

// DeploymentDevice is one member of a deployment.
type DeploymentDevice struct {
	DeviceID  string
	Phase     int
	Status    string
	Percent   *int
	Reason    string
	Attempts  int
	RetryAt   *time.Time
	UpdatedAt time.Time
}

// DeploymentFilter selects deployments, newest first. Limit 0 means 50; at
// most 500.
type DeploymentFilter struct {
	State string
	Limit int
}

// VersionCount is how many devices run a version of an artifact name; ""
// counts the devices with no succeeded update of that name.
type VersionCount struct {
	Version string
	Devices int
}

// Deployment bounds and defaults (docs/api.md "Deployments").
const (
	DefaultMaxInFlight      = 50
	MaxMaxInFlight          = 10000
	DefaultFailureThreshold = 20
	DefaultMaxAttempts      = 3
	MaxMaxAttempts          = 10
	DefaultCommitTimeout    = 300
	MaxCommitTimeout        = 86400
	// MaxPhases bounds the phases of a deployment.
	MaxPhases = 10
	// DefaultMaxDeploymentMembers is DeploymentOptions.MaxMembers' default.
	DefaultMaxDeploymentMembers = 100000
)

// DeploymentOptions tune the deployments engine (Options.Deployments).
type DeploymentOptions struct {
	// Tick is how often the engine looks at every live deployment (it is
	// also woken by reports and operator actions). Defaults to 1s.
	Tick time.Duration
	// RetryBackoff is the wait before a device's second attempt; it
	// doubles with every further attempt, up to MaxRetryBackoff. Defaults
	// to 30s.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps the wait between attempts. Defaults to 10m.
	MaxRetryBackoff time.Duration
	// CallTTL is the ttl of the queued ota.update and ota.abort calls: how
	// long an offline device may take to come back and still get them. A
	// device in flight that reports nothing for CallTTL plus the commit
	// timeout fails its attempt. Defaults to 24h.
	CallTTL time.Duration
	// MaxMembers bounds the members of one deployment: a create naming
	// more is refused, and a tag gaining devices beyond it adds none
	// beyond it. Defaults to 100000.
	MaxMembers int
}

func (o *DeploymentOptions) defaults() {
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 30 * time.Second
	}
	if o.MaxRetryBackoff <= 0 {
		o.MaxRetryBackoff = 10 * time.Minute
	}
	if o.CallTTL <= 0 {
		o.CallTTL = 24 * time.Hour
	}
	if o.CallTTL > MaxCallTTL {
		o.CallTTL = MaxCallTTL
	}
	if o.MaxMembers <= 0 {
		o.MaxMembers = DefaultMaxDeploymentMembers
	}
}

// checkSpec validates spec and fills in its defaults.
func (s *Service) checkSpec(spec *DeploymentSpec) error {
	if !artifacts.ValidName(spec.Name) {
		return invalidf("an artifact name is 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	if !artifacts.ValidVersion(spec.Version) {
		return invalidf("an artifact version is a semantic version 2.0.0 without a leading v (e.g. 1.2.3)")
	}
	if len(spec.DeviceIDs) == 0 && spec.Tag == "" {
		return invalidf("name the devices (ids), a tag, or both")
	}
	if spec.Tag != "" && !tags.Valid(spec.Tag) {
		return invalidf("tag %.80q: %s", spec.Tag, tags.Rule)
	}
	if len(spec.DeviceIDs) > s.opts.Deployments.MaxMembers {
		return invalidf("at most %d devices per deployment (%d named)", s.opts.Deployments.MaxMembers, len(spec.DeviceIDs))
	}
	seen := make(map[string]bool, len(spec.DeviceIDs))
	ids := make([]string, 0, len(spec.DeviceIDs))
	for _, id := range spec.DeviceIDs {
		if !ValidDeviceID(id) {
			return invalidf("device id %.80q is not a device id", id)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	spec.DeviceIDs = ids
	if len(spec.Phases) == 0 {
		spec.Phases = []int{100}
	}
	if len(spec.Phases) > MaxPhases {
		return invalidf("at most %d phases (%d given)", MaxPhases, len(spec.Phases))
	}
	for i, p := range spec.Phases {
		if p < 1 || p > 100 {
			return invalidf("phases are cumulative percents of the devices, 1 to 100 (phase %d is %d)", i+1, p)
		}
		if i > 0 && p <= spec.Phases[i-1] {
			return invalidf("phases must be strictly increasing cumulative percents (phase %d: %d after %d)", i+1, p, spec.Phases[i-1])
		}
	}
	if spec.Phases[len(spec.Phases)-1] != 100 {
		return invalidf("the last phase must be 100 (every device), not %d", spec.Phases[len(spec.Phases)-1])
	}
	switch {
	case spec.MaxInFlight == 0:
		spec.MaxInFlight = DefaultMaxInFlight
	case spec.MaxInFlight < 0 || spec.MaxInFlight > MaxMaxInFlight:
		return invalidf("max in flight must be 1 to %d (0: %d)", MaxMaxInFlight, DefaultMaxInFlight)
	}
	switch {
	case spec.FailureThreshold == 0:
		spec.FailureThreshold = DefaultFailureThreshold
	case spec.FailureThreshold == -1:
		spec.FailureThreshold = 0
	case spec.FailureThreshold < 0 || spec.FailureThreshold > 100:
		return invalidf("the failure threshold is a percent, 0 to 100")
	}
	switch {
	case spec.MaxAttempts == 0:
		spec.MaxAttempts = DefaultMaxAttempts
	case spec.MaxAttempts < 0 || spec.MaxAttempts > MaxMaxAttempts:
		return invalidf("max attempts must be 1 to %d (0: %d)", MaxMaxAttempts, DefaultMaxAttempts)
	}
	switch {
	case spec.CommitTimeout == 0:
		spec.CommitTimeout = DefaultCommitTimeout
	case spec.CommitTimeout == -1:
		spec.CommitTimeout = 0
	case spec.CommitTimeout < 0 || spec.CommitTimeout > MaxCommitTimeout:
		return invalidf("the commit timeout must be 0 to %d seconds", MaxCommitTimeout)
	}
	return nil
}

// CreateDeployment starts a deployment of the artifact spec.Name
// spec.Version of the actor's organisation (operators and up). Every
// named device must be one of the organisation's, with an accepted key
// and not decommissioned; the tag's devices join now and while the
// deployment runs. It is scheduled when NotBefore is ahead, running
// otherwise. A refused spec stores nothing.
func (s *Service) CreateDeployment(ctx context.Context, a Actor, spec DeploymentSpec) (Deployment, error) {
	org := a.OrgID
	if !a.operates(org) {
		return Deployment{}, fmt.Errorf("%w: role %s may not create deployments", ErrForbidden, a.Role)
	}
	d, err := s.createDeployment(ctx, a, org, spec)
	ref := spec.Name + "@" + spec.Version
	if err != nil {
		if errors.Is(err, ErrInvalid) {
			ref = "" // what was sent may be anything
		}
		s.audit(ctx, org, a, "deployment.create", ref, "error", map[string]any{"error": s.auditError("deployment.create", ref, err)})
		return d, err
	}
	s.audit(ctx, org, a, "deployment.create", deploymentRef(d.ID), "ok", map[string]any{
		"artifact": ref, "devices": len(d.Spec.DeviceIDs), "tag": d.Spec.Tag, "phases": d.Spec.Phases, "members": d.Total})
	s.deploymentEvent(d, nil)
	if d.Total <= maxCreateEvents {
		// Every member starts pending; beyond the bound the deployment's
		// event (with its counts) says it, so that a subscriber is not
		// dropped for a burst of events. Under the deployment's lock,
		// which the engine holds while it sends and publishes: a member
		// it has claimed already (its "sent" is out) gets no "pending"
		// after it, every other one gets its "pending" before anything.
		s.st.WithDeployment(ctx, d.ID, true, func() error {
			ms, err := s.st.ListMembers(ctx, d.ID)
			for _, m := range ms {
				if m.Status == DevPending {
					s.memberEvent(store.Deployment{ID: d.ID, OrgID: d.OrgID, State: d.State, Phase: d.Phase}, m)
				}
			}
			return err
		})
	}
	s.wakeEngine()
	return d, nil
}

// maxCreateEvents bounds the members whose pending status a create
// publishes one event each for.
const maxCreateEvents = 200

func deploymentRef(id int64) string { return fmt.Sprintf("deployment:%d", id) }

func (s *Service) createDeployment(ctx context.Context, a Actor, org int64, spec DeploymentSpec) (Deployment, error) {
	if err := s.checkSpec(&spec); err != nil {
		return Deployment{}, err
	}
	art, err := s.st.ArtifactByVersion(ctx, org, spec.Name, spec.Version)
	if errors.Is(err, store.ErrNotFound) {
		return Deployment{}, invalidf("artifact %s version %s does not exist in this organisation: upload it first", spec.Name, spec.Version)
	}
	if err != nil {
		return Deployment{}, err
	}
	// Devices install only what the organisation's release signs: refuse
	// here what every one of them would refuse.
	if _, err := s.SignedTarget(ctx, art); err != nil {
		return Deployment{}, err
	}
	members := slices.Clone(spec.DeviceIDs)
	elig, err := s.st.Eligibility(ctx, spec.DeviceIDs)
	if err != nil {
		return Deployment{}, err
	}
	for _, id := range spec.DeviceIDs {
		e, ok := elig[id]
		if !ok || e.OrgID != org {
			return Deployment{}, invalidf("device %s: no such device in this organisation", id)
		}
		if e.Decommissioned || !e.Accepted {
			return Deployment{}, invalidf("device %s has no accepted key (or is decommissioned): it cannot be updated", id)
		}
	}
	max := s.opts.Deployments.MaxMembers
	if spec.Tag != "" {
		tagged, err := s.st.TagDevices(ctx, org, spec.Tag, max+1)
		if err != nil {
			return Deployment{}, err
		}
		for _, id := range tagged {
			if !slices.Contains(spec.DeviceIDs, id) {
				members = append(members, id)
			}
		}
	}
	if len(members) > max {
		return Deployment{}, invalidf("at most %d devices per deployment (this one would have more)", max)
	}
	state := DeploymentRunning
	if spec.NotBefore.IsZero() {
		spec.NotBefore = time.Now()
	}
	spec.NotBefore = spec.NotBefore.UTC()
	if spec.NotBefore.After(time.Now()) {
		state = DeploymentScheduled
	}
	row, err := s.st.InsertDeployment(ctx, store.Deployment{OrgID: org, ArtifactID: &art.ID, Name: spec.Name, Version: spec.Version,
		DeviceIDs: spec.DeviceIDs, Tag: spec.Tag, Phases: spec.Phases, MaxInFlight: spec.MaxInFlight,
		FailureThreshold: spec.FailureThreshold, MaxAttempts: spec.MaxAttempts, CommitTimeout: spec.CommitTimeout,
		NotBefore: spec.NotBefore, State: state, CreatedBy: a.Name()}, members)
	if err != nil {
		return Deployment{}, err
	}
	return s.loadDeployment(ctx, row)
}

// loadDeployment adds the counts to a row.
func (s *Service) loadDeployment(ctx context.Context, row store.Deployment) (Deployment, error) {
	counts, err := s.st.StatusCounts(ctx, []int64{row.ID})
	if err != nil {
		return Deployment{}, err
	}
	return toDeployment(row, counts[row.ID]), nil
}

func toDeployment(r store.Deployment, counts map[string]int) Deployment {
	d := Deployment{ID: r.ID, OrgID: r.OrgID, Name: r.Name, Version: r.Version, State: r.State, Phase: r.Phase,
		Reason: r.Reason, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, FinishedAt: r.FinishedAt,
		Counts: map[string]int{},
		Spec: DeploymentSpec{Name: r.Name, Version: r.Version, DeviceIDs: r.DeviceIDs, Tag: r.Tag, Phases: r.Phases,
			MaxInFlight: r.MaxInFlight, FailureThreshold: r.FailureThreshold, MaxAttempts: r.MaxAttempts,
			CommitTimeout: r.CommitTimeout, NotBefore: r.NotBefore}}
	if r.ArtifactID != nil {
		d.ArtifactID = *r.ArtifactID
	}
	if d.Spec.DeviceIDs == nil {
		d.Spec.DeviceIDs = []string{}
	}
	for st, n := range counts {
		d.Counts[st] = n
		d.Total += n
	}
	return d
}

// ListDeployments lists the deployments the actor sees (its organisation;
// every one for super users), newest first.
func (s *Service) ListDeployments(ctx context.Context, a Actor, f DeploymentFilter) ([]Deployment, error) {
	if !a.Role.Valid() {
		return nil, ErrForbidden
	}
	switch f.State {
	case "", DeploymentScheduled, DeploymentRunning, DeploymentPaused, DeploymentAborted, DeploymentCompleted:
	default:
		return nil, invalidf("state %.40q is not one of scheduled, running, paused, aborted, completed", f.State)
	}
	rows, err := s.st.ListDeployments(ctx, a.scope(), f.State, clampLimit(f.Limit))
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	counts, err := s.st.StatusCounts(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Deployment, 0, len(rows))
	for _, r := range rows {
		out = append(out, toDeployment(r, counts[r.ID]))
	}
	return out, nil
}

// getDeployment loads a deployment the actor sees.
func (s *Service) getDeployment(ctx context.Context, a Actor, id int64) (store.Deployment, error) {
	r, err := s.st.GetDeployment(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !a.sees(r.OrgID)) {
		return store.Deployment{}, &PublicError{Kind: ErrNotFound, Msg: fmt.Sprintf("deployment %d not found", id)}
	}
	return r, err
}

// GetDeployment returns a deployment and its members (by phase, then
// device id). Another organisation's deployment is ErrNotFound.
func (s *Service) GetDeployment(ctx context.Context, a Actor, id int64) (Deployment, []DeploymentDevice, error) {
	r, err := s.getDeployment(ctx, a, id)
	if err != nil {
		return Deployment{}, nil, err
	}
	ms, err := s.st.ListMembers(ctx, id)
	if err != nil {
		return Deployment{}, nil, err
	}
	counts := map[string]int{}
	out := make([]DeploymentDevice, 0, len(ms))
	for _, m := range ms {
		counts[m.Status]++
		out = append(out, toDeploymentDevice(m))
	}
	return toDeployment(r, counts), out, nil
}

func toDeploymentDevice(m store.DeploymentMember) DeploymentDevice {
	return DeploymentDevice{DeviceID: m.DeviceID, Phase: m.Phase, Status: m.Status, Percent: m.Percent, Reason: m.Reason,
		Attempts: m.Attempts, RetryAt: m.RetryAt, UpdatedAt: m.UpdatedAt}
}

// operateDeployment loads a deployment the actor may change, and runs fn
// under the deployment's lock (so no engine tick works on it meanwhile),
// auditing action.
func (s *Service) operateDeployment(ctx context.Context, a Actor, id int64, action string, fn func(r store.Deployment) (store.Deployment, error)) (Deployment, error) {
	r, err := s.getDeployment(ctx, a, id)
	if err != nil {
		return Deployment{}, err
	}
	if !a.operates(r.OrgID) {
		return Deployment{}, fmt.Errorf("%w: role %s may not change deployments", ErrForbidden, a.Role)
	}
	var out store.Deployment
	_, err = s.st.WithDeployment(ctx, id, true, func() error {
		r, err := s.st.GetDeployment(ctx, id)
		if err != nil {
			return err
		}
		out, err = fn(r)
		return err
	})
	if err != nil {
		s.audit(ctx, r.OrgID, a, action, deploymentRef(id), "error", map[string]any{"error": s.auditError(action, deploymentRef(id), err)})
		return Deployment{}, err
	}
	s.audit(ctx, r.OrgID, a, action, deploymentRef(id), "ok", map[string]any{"state": out.State, "was": r.State})
	d, err := s.loadDeployment(ctx, out)
	if err != nil {
		return Deployment{}, err
	}
	s.deploymentEvent(d, nil)
	s.wakeEngine()
	return d, nil
}

// PauseDeployment pauses a running or scheduled deployment (operators and
// up): nothing new is sent; devices in flight go on and report.
func (s *Service) PauseDeployment(ctx context.Context, a Actor, id int64) (Deployment, error) {
	return s.operateDeployment(ctx, a, id, "deployment.pause", func(r store.Deployment) (store.Deployment, error) {
		out, ok, err := s.st.SetDeploymentState(ctx, id, []string{DeploymentRunning, DeploymentScheduled}, DeploymentPaused,
			"paused by "+a.Name())
		if err == nil && !ok {
			err = conflictf("deployment %d is %s: only a running or scheduled deployment can be paused", id, r.State)
		}
		return out, err
	})
}

// ResumeDeployment resumes a paused deployment (operators and up): it runs
// again (scheduled while its not-before time is ahead). The final
// failures of the current phase so far are accepted: the failure
// threshold pauses it again only when more devices fail.
func (s *Service) ResumeDeployment(ctx context.Context, a Actor, id int64) (Deployment, error) {
	return s.operateDeployment(ctx, a, id, "deployment.resume", func(r store.Deployment) (store.Deployment, error) {
		if r.State != DeploymentPaused {
			return r, conflictf("deployment %d is %s: only a paused deployment can be resumed", id, r.State)
		}
		if r.ArtifactID == nil {
			return r, conflictf("deployment %d cannot resume: its artifact %s version %s was deleted", id, r.Name, r.Version)
		}
		counts, err := s.st.MemberCounts(ctx, id)
		if err != nil {
			return r, err
		}
		failed := 0
		for _, c := range counts {
			if c.Phase == r.Phase && (c.Status == DevFailed || c.Status == DevRolledBack) { // as tickRunning counts
				failed += c.N
			}
		}
		out, ok, err := s.st.ResumeDeployment(ctx, id, failed)
		if err == nil && !ok {
			err = conflictf("deployment %d is %s: only a paused deployment can be resumed", id, r.State)
		}
		return out, err
	})
}

// AbortDeployment aborts a deployment for good (operators and up): members
// not started are aborted, queued calls not yet delivered are cancelled,
// devices in flight are sent ota.abort and end aborted when they report;
// finished members keep their status.
func (s *Service) AbortDeployment(ctx context.Context, a Actor, id int64) (Deployment, error) {
	return s.operateDeployment(ctx, a, id, "deployment.abort", func(r store.Deployment) (store.Deployment, error) {
		out, ok, err := s.st.SetDeploymentState(ctx, id, []string{DeploymentScheduled, DeploymentRunning, DeploymentPaused},
			DeploymentAborted, "aborted by "+a.Name())
		if err == nil && !ok {
			return out, conflictf("deployment %d is %s already: it cannot be aborted", id, r.State)
		}
		if err != nil {
			return out, err
		}
		ms, err := s.st.AbortPending(ctx, id, "not started: the deployment was aborted")
		for _, m := range ms {
			s.memberEvent(out, m)
		}
		return out, err
	})
}

// OTAVersions is the fleet's version breakdown of artifact name: how many
// of the organisation's devices (accepted, not decommissioned) run each
// version, by their newest succeeded update of that name; "" counts the
// devices with none. Newest version first, "" last.
func (s *Service) OTAVersions(ctx context.Context, a Actor, name string) ([]VersionCount, error) {
	if !a.Role.Valid() {
		return nil, ErrForbidden
	}
	if !artifacts.ValidName(name) {
		return nil, invalidf("an artifact name is 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	rows, err := s.st.OTAVersions(ctx, a.scope(), name)
	if err != nil {
		return nil, err
	}
	out := make([]VersionCount, 0, len(rows))
	for _, r := range rows {
		out = append(out, VersionCount{Version: r.Version, Devices: r.Devices})
	}
	slices.SortFunc(out, func(x, y VersionCount) int {
		switch {
		case x.Version == "" || y.Version == "":
			return strings.Compare(y.Version, x.Version) // "" last
		}
		if c := artifacts.CompareVersions(y.Version, x.Version); c != 0 {
			return c
		}
		return strings.Compare(y.Version, x.Version)
	})
	return out, nil
}

// deploymentEvent publishes EventDeployment for a deployment's change, or
// for one member's when m is not nil.
func (s *Service) deploymentEvent(d Deployment, m *DeploymentDevice) {
	data := map[string]any{"deployment": d.ID, "state": d.State, "phase": d.Phase}
	if d.Reason != "" {
		data["reason"] = d.Reason
	}
	ev := Event{Type: EventDeployment, OrgID: d.OrgID}
	if m != nil {
		data["device"], data["status"] = m.DeviceID, m.Status
		if m.Percent != nil {
			data["percent"] = *m.Percent
		}
		if m.Reason != "" {
			data["reason"] = m.Reason
		}
		ev.DeviceID = m.DeviceID
	}
	ev.Data = mustJSON(data)
	s.publish(ev)
}

func (s *Service) memberEvent(r store.Deployment, m store.DeploymentMember) {
	dd := toDeploymentDevice(m)
	s.deploymentEvent(Deployment{ID: r.ID, OrgID: r.OrgID, State: r.State, Phase: r.Phase}, &dd)
}
