package wire

import "time"

// Release answers GET and PUT /release: the organisation's release
// repository (docs/security.md). The keys are this cloud's online public
// keys (PEM) that the operator's root.json must name; versions and
// expiries are zero / absent for a role that has no metadata yet.
type Release struct {
	OrgID            int64           `json:"org_id"`
	SnapshotKey      string          `json:"snapshot_key"`
	TimestampKey     string          `json:"timestamp_key"`
	RootVersion      int64           `json:"root_version"`
	RootExpires      *time.Time      `json:"root_expires,omitempty"`
	TargetsVersion   int64           `json:"targets_version"`
	TargetsExpires   *time.Time      `json:"targets_expires,omitempty"`
	SnapshotVersion  int64           `json:"snapshot_version"`
	SnapshotExpires  *time.Time      `json:"snapshot_expires,omitempty"`
	TimestampVersion int64           `json:"timestamp_version"`
	TimestampExpires *time.Time      `json:"timestamp_expires,omitempty"`
	Targets          []ReleaseTarget `json:"targets"`
	UpdatedAt        *time.Time      `json:"updated_at,omitempty"`
}

// ReleaseTarget is one signed target: artifact name at version, with the
// length and sha256 (hex) its bytes must have.
type ReleaseTarget struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Length  int64  `json:"length"`
	SHA256  string `json:"sha256"`
}

// ReleaseUpload is the body of PUT /release. Roots are root.json files the
// cloud does not have yet, oldest first; Targets is a targets.json. Both
// are the files' exact bytes, base64 in JSON (signatures are over them).
type ReleaseUpload struct {
	Roots   [][]byte `json:"roots,omitempty"`
	Targets []byte   `json:"targets,omitempty"`
}
