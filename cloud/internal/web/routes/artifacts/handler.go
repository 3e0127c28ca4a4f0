// Package artifacts is the OTA artifacts page: every artifact name with
// its versions (newest first), their size, hash and uploader; what the
// fleet runs of each name (fleet.OTAVersions); an upload form and, for
// operators, deletion after a confirmation.
//
// The upload is a multipart form read as a stream (app.Route.Multipart):
// the file part goes straight to fleet.UploadArtifact, which writes it to
// disk under the size limit, so no upload is ever held in memory. The form
// sends name and version before the file, as browsers send fields in
// document order.
package artifacts

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// formSlack is what an upload's body may carry beyond the artifact: the
// signed targets.json, the other fields and the multipart framing.
const formSlack = fleet.MaxSessionMetadata + 64<<10

// Routes are the artifacts page, the upload and the deletion.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{
		{Pattern: "GET /artifacts", Role: fleet.RoleViewer, Handler: h.list},
		{Pattern: "POST /artifacts", Role: fleet.RoleOperator, Handler: h.upload, Multipart: true,
			MaxBody: svc.MaxArtifactSize() + formSlack},
		{Pattern: "POST /artifacts/{id}/delete", Role: fleet.RoleOperator, Handler: h.delete},
	}
}

type handler struct{ svc *fleet.Service }

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	m, err := h.load(r)
	if err != nil {
		return err
	}
	if app.IsHTMX(r) {
		return app.Render(w, r, View(m), "fleet")
	}
	return app.Render(w, r, View(m))
}

// load fills the page: the artifacts of the organisation viewed, grouped
// by name, each with the fleet's versions of that name.
func (h *handler) load(r *http.Request) (Model, error) {
	m := Model{Page: app.NewPage(r, "Artifacts", "artifacts"), MaxSize: h.svc.MaxArtifactSize()}
	a := app.Actor(r)
	list, err := h.svc.ListArtifacts(r.Context(), a, fleet.ArtifactFilter{})
	if err != nil {
		return m, err
	}
	org := app.ViewOrg(r)
	m.ShowOrg = a.Role == fleet.RoleSuper && org == 0
	for _, art := range list {
		if org > 0 && art.OrgID != org {
			continue
		}
		n := len(m.Groups)
		if n == 0 || m.Groups[n-1].Name != art.Name || m.Groups[n-1].OrgID != art.OrgID {
			m.Groups = append(m.Groups, Group{Name: art.Name, OrgID: art.OrgID})
			n++
		}
		m.Groups[n-1].Versions = append(m.Groups[n-1].Versions, art)
	}
	if len(m.Groups) > MaxGroups {
		m.More = len(m.Groups) - MaxGroups
		m.Groups = m.Groups[:MaxGroups]
	}
	for i := range m.Groups {
		g := &m.Groups[i]
		if m.ShowOrg {
			continue // the breakdown is of the actor's organisation
		}
		if g.Fleet, err = h.svc.OTAVersions(r.Context(), a, g.Name); err != nil {
			return m, err
		}
	}
	m.Signed = map[int64]string{}
	for _, g := range m.Groups {
		for _, art := range g.Versions {
			if _, err := h.svc.SignedTarget(r.Context(), art); err != nil {
				msg, ok := fleet.PublicMessage(err)
				if !ok {
					return m, err
				}
				m.Signed[art.ID] = msg
			}
		}
	}
	return m, nil
}

// maxField bounds the small fields of the upload form.
const maxField = 256

// upload stores the file of the form as the artifact name@version. A
// refusal (bad name or version, a version that exists, a file beyond the
// limit) shows the page again with the reason and the values typed, and
// stores nothing.
func (h *handler) upload(w http.ResponseWriter, r *http.Request) error {
	mr := app.MultipartFrom(r)
	if mr == nil {
		return app.Errorf(http.StatusBadRequest, "This form must be sent as multipart/form-data.")
	}
	var f Form
	var targets []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return h.refuse(w, r, f, http.StatusUnprocessableEntity, "Choose a file to upload.")
		}
		if err != nil {
			return h.readError(w, r, f, err)
		}
		switch p.FormName() {
		case "name", "version":
			b, err := io.ReadAll(io.LimitReader(p, maxField+1))
			if err != nil {
				return h.readError(w, r, f, err)
			}
			if len(b) > maxField {
				return h.refuse(w, r, f, http.StatusUnprocessableEntity, fmt.Sprintf("The %s is too long.", p.FormName()))
			}
			v := strings.TrimSpace(string(b))
			if p.FormName() == "name" {
				f.Name = v
			} else {
				f.Version = v
			}
		case "targets":
			// The optional signed targets.json comes before the bundle: it
			// is small (read whole, bounded) and published after the
			// bundle is stored.
			b, err := io.ReadAll(io.LimitReader(p, fleet.MaxSessionMetadata+1))
			if err != nil {
				return h.readError(w, r, f, err)
			}
			if len(b) > fleet.MaxSessionMetadata {
				return h.refuse(w, r, f, http.StatusRequestEntityTooLarge,
					fmt.Sprintf("The targets.json is larger than %d bytes; nothing was stored.", fleet.MaxSessionMetadata))
			}
			targets = b
		case "file":
			if p.FileName() == "" {
				return h.refuse(w, r, f, http.StatusUnprocessableEntity, "Choose a file to upload.")
			}
			art, err := h.svc.UploadArtifact(r.Context(), app.Actor(r), f.Name, f.Version, -1, p)
			if err != nil {
				return h.uploadError(w, r, f, err)
			}
			if len(targets) == 0 {
				return app.Redirect(w, r, "/artifacts", fmt.Sprintf("Uploaded %s %s (%s).", art.Name, art.Version, Size(art.Length)))
			}
			return h.publish(w, r, f, art, targets)
		default:
			// Unknown parts are skipped (bounded by the body limit).
			if _, err := io.Copy(io.Discard, p); err != nil {
				return h.readError(w, r, f, err)
			}
		}
	}
}

// publish uploads the signed targets.json that came with art. A refusal
// deletes art again, so that a refused upload stores nothing.
func (h *handler) publish(w http.ResponseWriter, r *http.Request, f Form, art fleet.Artifact, targets []byte) error {
	a := app.Actor(r)
	if _, err := h.svc.UploadRelease(r.Context(), a, fleet.ReleaseUpload{Targets: targets}); err != nil {
		msg, ok := fleet.PublicMessage(err)
		if !ok {
			return err
		}
		if derr := h.svc.DeleteArtifact(r.Context(), a, art.ID); derr != nil {
			return fmt.Errorf("deleting artifact %d after its targets.json was refused: %w", art.ID, derr)
		}
		return h.refuse(w, r, f, http.StatusUnprocessableEntity, "The targets.json was refused, so the bundle was not kept: "+msg+".")
	}
	return app.Redirect(w, r, "/artifacts", fmt.Sprintf("Uploaded %s %s (%s) and published its signature.", art.Name, art.Version, Size(art.Length)))
}

// uploadError shows a refused upload. The rest of the body is read (it is
// bounded by the route's limit) so that the browser, still sending, gets
// the answer instead of a reset connection.
func (h *handler) uploadError(w http.ResponseWriter, r *http.Request, f Form, err error) error {
	msg, ok := fleet.PublicMessage(err)
	if !ok {
		return err
	}
	status := http.StatusUnprocessableEntity
	switch {
	case errors.Is(err, fleet.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, fleet.ErrForbidden):
		status = http.StatusForbidden
	}
	return h.refuse(w, r, f, status, capital(msg)+".")
}

func (h *handler) readError(w http.ResponseWriter, r *http.Request, f Form, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return h.refuse(w, r, f, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("The artifact is larger than this cloud's limit of %d bytes.", h.svc.MaxArtifactSize()))
	}
	return &app.HTTPError{Status: http.StatusBadRequest, Msg: "The upload was cut off or malformed; nothing was stored.", Err: err}
}

// refuse shows the page again with msg and the values typed.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, f Form, status int, msg string) error {
	io.Copy(io.Discard, r.Body) // bounded by the route's MaxBody
	m, err := h.load(r)
	if err != nil {
		return err
	}
	m.Page.Error, m.Form = msg, f
	return app.RenderStatus(w, r, status, View(m))
}

// delete asks first (the page's Delete button posts without confirm),
// then deletes the artifact.
func (h *handler) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return app.Errorf(http.StatusNotFound, "Not found.")
	}
	art, err := h.svc.GetArtifact(r.Context(), app.Actor(r), id)
	if err != nil {
		return err
	}
	if r.PostFormValue("confirm") != "yes" {
		return app.Render(w, r, Confirm(ConfirmModel{Page: app.NewPage(r, "Delete artifact", "artifacts"), Artifact: art}))
	}
	if err := h.svc.DeleteArtifact(r.Context(), app.Actor(r), id); err != nil {
		return err
	}
	return app.Redirect(w, r, "/artifacts", fmt.Sprintf("Deleted %s %s.", art.Name, art.Version))
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
