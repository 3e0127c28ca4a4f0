package api

import (
	"encoding/hex"
	"net/http"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// Release metadata: GET /release shows the organisation's release
// repository and the cloud's online public keys; PUT /release uploads
// root.json and targets.json files signed offline (`bosun release
// publish`, `bosun artifacts upload --release`).

// maxReleaseBody bounds PUT /release: a targets.json and a few roots of
// at most fleet.MaxSessionMetadata each, base64-encoded.
const maxReleaseBody = 4 << 20

func toRelease(in fleet.ReleaseInfo) wire.Release {
	t := func(v time.Time) *time.Time {
		if v.IsZero() {
			return nil
		}
		u := v.UTC()
		return &u
	}
	out := wire.Release{OrgID: in.OrgID, SnapshotKey: in.SnapshotKey, TimestampKey: in.TimestampKey,
		RootVersion: in.RootVersion, RootExpires: t(in.RootExpires),
		TargetsVersion: in.TargetsVersion, TargetsExpires: t(in.TargetsExpires),
		SnapshotVersion: in.SnapshotVersion, SnapshotExpires: t(in.SnapshotExpires),
		TimestampVersion: in.TimestampVersion, TimestampExpires: t(in.TimestampExpires),
		Targets: make([]wire.ReleaseTarget, 0, len(in.Targets)), UpdatedAt: t(in.UpdatedAt)}
	for _, x := range in.Targets {
		out.Targets = append(out.Targets, wire.ReleaseTarget{Name: x.Name, Version: x.Version, Length: x.Length,
			SHA256: hex.EncodeToString(x.Hashes["sha256"])})
	}
	return out
}

// GET /release
func (h *handler) getRelease(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	in, err := h.svc.Release(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toRelease(in))
	return nil
}

// PUT /release
func (h *handler) putRelease(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var body wire.ReleaseUpload
	if err := decodeJSON(w, r, maxReleaseBody, &body, false); err != nil {
		return err
	}
	in, err := h.svc.UploadRelease(r.Context(), a, fleet.ReleaseUpload{Roots: body.Roots, Targets: body.Targets})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toRelease(in))
	return nil
}
