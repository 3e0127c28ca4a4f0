package wire

import "time"

// DeploymentRequest is the body of POST /deployments. Omitted fields take
// their defaults (docs/api.md "Deployments"); failure_threshold and
// commit_timeout may be 0 explicitly.
type DeploymentRequest struct {
	Name             string     `json:"name"`
	Version          string     `json:"version"`
	Devices          []string   `json:"devices,omitempty"`
	Tag              string     `json:"tag,omitempty"`
	Phases           []int      `json:"phases,omitempty"`
	MaxInFlight      int        `json:"max_in_flight,omitempty"`
	FailureThreshold *int       `json:"failure_threshold,omitempty"`
	MaxAttempts      int        `json:"max_attempts,omitempty"`
	CommitTimeout    *int       `json:"commit_timeout,omitempty"` // seconds
	NotBefore        *time.Time `json:"not_before,omitempty"`
}

// Deployment is a deployment and the counts of its members by status.
type Deployment struct {
	ID               int64          `json:"id"`
	OrgID            int64          `json:"org_id"`
	Name             string         `json:"name"`
	Version          string         `json:"version"`
	ArtifactID       int64          `json:"artifact_id"` // 0 once the artifact was deleted
	Devices          []string       `json:"devices"`     // named at create
	Tag              string         `json:"tag,omitempty"`
	Phases           []int          `json:"phases"`
	MaxInFlight      int            `json:"max_in_flight"`
	FailureThreshold int            `json:"failure_threshold"`
	MaxAttempts      int            `json:"max_attempts"`
	CommitTimeout    int            `json:"commit_timeout"`
	NotBefore        time.Time      `json:"not_before"`
	State            string         `json:"state"` // scheduled|running|paused|aborted|completed
	Phase            int            `json:"phase"` // index into phases
	Reason           string         `json:"reason,omitempty"`
	CreatedBy        string         `json:"created_by"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
	FinishedAt       *time.Time     `json:"finished_at,omitempty"`
	Total            int            `json:"total"`
	Counts           map[string]int `json:"counts"`
}

// DeploymentMember is one device of a deployment.
type DeploymentMember struct {
	DeviceID  string     `json:"device_id"`
	Phase     int        `json:"phase"`
	Status    string     `json:"status"`
	Percent   *int       `json:"percent,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Attempts  int        `json:"attempts"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// DeploymentDetail answers GET /deployments/{id}.
type DeploymentDetail struct {
	Deployment
	Members []DeploymentMember `json:"members"`
}

// DeploymentList answers GET /deployments, newest first.
type DeploymentList struct {
	Items []Deployment `json:"items"`
}

// VersionCount is how many devices run a version; "" counts the devices
// with no succeeded update of the name.
type VersionCount struct {
	Version string `json:"version"`
	Devices int    `json:"devices"`
}

// VersionList answers GET /ota/versions?name=NAME, newest version first,
// "" last.
type VersionList struct {
	Name  string         `json:"name"`
	Items []VersionCount `json:"items"`
}
