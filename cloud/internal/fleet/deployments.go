package fleet

import (
	"context"
	"errors"
	"time"
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
	// may end failed for good before the deployment pauses itself; -1
	// asks for 0 (any final failure pauses). 0 means the default, 20.
	FailureThreshold int
	// MaxAttempts bounds the attempts per device, 1..10. 0 means 3. A
	// device failing MaxAttempts times is set aside (failed, final).
	MaxAttempts int
	// CommitTimeout is the seconds passed to ota.update, 0..86400. 0
	// means 300.
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

var errDeploymentsTODO = errors.New("deployments: not implemented yet")

// CreateDeployment starts a deployment (operators and up).
func (s *Service) CreateDeployment(ctx context.Context, a Actor, spec DeploymentSpec) (Deployment, error) {
	return Deployment{}, errDeploymentsTODO
}

// ListDeployments lists the deployments the actor sees, newest first.
func (s *Service) ListDeployments(ctx context.Context, a Actor, f DeploymentFilter) ([]Deployment, error) {
	return nil, errDeploymentsTODO
}

// GetDeployment returns a deployment and its members.
func (s *Service) GetDeployment(ctx context.Context, a Actor, id int64) (Deployment, []DeploymentDevice, error) {
	return Deployment{}, nil, errDeploymentsTODO
}

// PauseDeployment pauses a running or scheduled deployment.
func (s *Service) PauseDeployment(ctx context.Context, a Actor, id int64) (Deployment, error) {
	return Deployment{}, errDeploymentsTODO
}

// ResumeDeployment resumes a paused deployment.
func (s *Service) ResumeDeployment(ctx context.Context, a Actor, id int64) (Deployment, error) {
	return Deployment{}, errDeploymentsTODO
}

// AbortDeployment aborts a deployment for good.
func (s *Service) AbortDeployment(ctx context.Context, a Actor, id int64) (Deployment, error) {
	return Deployment{}, errDeploymentsTODO
}

// OTAVersions is the fleet's version breakdown of artifact name.
func (s *Service) OTAVersions(ctx context.Context, a Actor, name string) ([]VersionCount, error) {
	return nil, errDeploymentsTODO
}
