package wire

import (
	"encoding/json"
	"time"
)

// Artifact describes an uploaded OTA artifact (its bytes are downloaded by
// devices, not through the API).
type Artifact struct {
	ID         int64           `json:"id"`
	OrgID      int64           `json:"org_id"`
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	SHA256     string          `json:"sha256"` // hex
	Length     int64           `json:"length"`
	Metadata   json.RawMessage `json:"metadata,omitempty"` // the signed targets.json, as stored
	UploadedBy string          `json:"uploaded_by"`
	UploadedAt time.Time       `json:"uploaded_at"`
}

// ArtifactList answers GET /artifacts: by name, newest version first.
type ArtifactList struct {
	Items []Artifact `json:"items"`
}
