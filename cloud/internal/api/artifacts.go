package api

import (
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// Artifacts: POST /artifacts?name=N&version=V with the raw bytes as the
// body (application/octet-stream), streamed to disk; GET /artifacts,
// GET/DELETE /artifacts/{id}; PUT /artifacts/{id}/metadata with the
// release's signed targets.json. The upload is a raw body rather than
// multipart so that it streams straight from the request to the file
// (curl --data-binary @bundle.tar.gz works) and its size limit is exact;
// the metadata, a small JSON document with its own limit, has its own
// request.

func toArtifact(a fleet.Artifact) wire.Artifact {
	return wire.Artifact{ID: a.ID, OrgID: a.OrgID, Name: a.Name, Version: a.Version,
		SHA256: hex.EncodeToString(a.SHA256), Length: a.Length, Metadata: a.Metadata,
		UploadedBy: a.UploadedBy, UploadedAt: a.UploadedAt}
}

// POST /artifacts?name=N&version=V
func (h *handler) uploadArtifact(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	q, err := parseQuery(r, "name", "version")
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/octet-stream" {
			return &HTTPError{Code: wire.CodeUnsupportedMedia, Msg: "an artifact upload's body must be application/octet-stream (the raw bundle)"}
		}
	}
	art, err := h.svc.UploadArtifact(r.Context(), a, q.str("name"), q.str("version"), r.ContentLength, r.Body)
	if errors.Is(err, fleet.ErrTooLarge) {
		return &HTTPError{Code: wire.CodeTooLarge, Msg: fleet.PublicText(err), Err: err}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/artifacts/"+strconv.FormatInt(art.ID, 10))
	writeJSON(w, http.StatusCreated, toArtifact(art))
	return nil
}

// GET /artifacts?name=N
func (h *handler) listArtifacts(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	q, err := parseQuery(r, "name")
	if err != nil {
		return err
	}
	list, err := h.svc.ListArtifacts(r.Context(), a, fleet.ArtifactFilter{Name: q.str("name")})
	if err != nil {
		return err
	}
	out := wire.ArtifactList{Items: make([]wire.Artifact, 0, len(list))}
	for _, art := range list {
		out.Items = append(out.Items, toArtifact(art))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func artifactID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, invalid("artifact id must be a positive integer")
	}
	return id, nil
}

// GET /artifacts/{id}
func (h *handler) getArtifact(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	id, err := artifactID(r)
	if err != nil {
		return err
	}
	art, err := h.svc.GetArtifact(r.Context(), a, id)
	if err != nil {
		return notFoundAs(err, "artifact %d not found", id)
	}
	writeJSON(w, http.StatusOK, toArtifact(art))
	return nil
}

// DELETE /artifacts/{id}
func (h *handler) deleteArtifact(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	id, err := artifactID(r)
	if err != nil {
		return err
	}
	if err := h.svc.DeleteArtifact(r.Context(), a, id); err != nil {
		return notFoundAs(err, "artifact %d not found", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PUT /artifacts/{id}/metadata with a JSON object (the signed targets.json).
func (h *handler) setArtifactMetadata(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	id, err := artifactID(r)
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &HTTPError{Code: wire.CodeUnsupportedMedia, Msg: "request body must be application/json"}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fleet.MaxArtifactMetadata))
	if err != nil {
		return err
	}
	if err := h.svc.SetArtifactMetadata(r.Context(), a, id, body); err != nil {
		return notFoundAs(err, "artifact %d not found", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Download returns the handler of GET /v1/ota/download/{token}, the
// devices' artifact download (see docs/protocol.md, "OTA download"): the
// token is the credential; HTTP Range requests resume (http.ServeContent:
// one range → 206 with Content-Range, several → multipart/byteranges,
// unsatisfiable → 416). A token that does not verify, has expired, or
// whose device may no longer download is 403; a deleted artifact 404;
// neither serves a byte.
func Download(svc *fleet.Service, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		d, err := svc.OpenDownload(r.Context(), r.PathValue("token"))
		switch {
		case errors.Is(err, fleet.ErrBadToken):
			logger.DebugContext(r.Context(), "ota download refused", "err", err)
			http.Error(w, "invalid or expired download token", http.StatusForbidden)
			return
		case errors.Is(err, fleet.ErrNotFound):
			logger.DebugContext(r.Context(), "ota download of a deleted artifact", "err", err)
			http.Error(w, "artifact not found", http.StatusNotFound)
			return
		case err != nil:
			logger.ErrorContext(r.Context(), "ota download", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		defer d.File.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"sha256:`+hex.EncodeToString(d.Artifact.SHA256)+`"`)
		logger.InfoContext(r.Context(), "ota download", "device_id", d.DeviceID, "artifact", fleet.ArtifactRef(d.Artifact),
			"range", r.Header.Get("Range"))
		http.ServeContent(w, r, "", d.Artifact.UploadedAt, d.File)
	})
}
