package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/release"
)

// upload is one field of an upload form, in order; file fields have a
// file name.
type field struct {
	name, value, file string
}

// postMultipart sends a multipart form with the fields in order.
func (b *browser) postMultipart(path string, fields ...field) resp {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range fields {
		var w interface{ Write([]byte) (int, error) }
		var err error
		if f.file != "" {
			w, err = mw.CreateFormFile(f.name, f.file)
		} else {
			w, err = mw.CreateFormField(f.name)
		}
		if err != nil {
			b.t.Fatal(err)
		}
		w.Write([]byte(f.value))
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// uploadForm is the dashboard's upload form: CSRF first, then name,
// version and the file.
func uploadForm(csrf, name, version string, data []byte) []field {
	return []field{{"csrf", csrf, ""}, {"name", name, ""}, {"version", version, ""}, {"file", string(data), "bundle.tar.gz"}}
}

// artifactServer is a cloud whose artifacts live in a directory the test
// can look into, with a size limit of max bytes.
func artifactServer(t *testing.T, max int64) (*cloudtest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	s := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
		c.DataDir, c.MaxArtifactSize = dir, max
	}))
	return s, dir
}

// storedFiles counts the files of the artifact store under the data
// directory (blobs and temporary files alike; the release's online keys
// live beside it).
func storedFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(dir, "artifacts"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func artifactRows(t *testing.T, s *cloudtest.Server) []fleet.Artifact {
	t.Helper()
	list, err := s.Service().ListArtifacts(context.Background(), s.Super, fleet.ArtifactFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestArtifactsUpload: an operator uploads from the form; the page lists
// the versions newest first (semver) with size, short hash and uploader,
// and the upload is audited. The body streams: the route's limit is the
// artifact limit, not the dashboard's 1 MiB.
func TestArtifactsUpload(t *testing.T) {
	s, dir := artifactServer(t, 3<<20)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	big := bytes.Repeat([]byte("bosun!"), (2<<20)/6) // 2 MiB: beyond the dashboard's form limit
	for _, v := range []string{"1.2.0", "1.10.0", "1.9.0-rc.1"} {
		b.get("/artifacts")
		data := []byte("bundle " + v)
		if v == "1.10.0" {
			data = big
		}
		r := b.postMultipart("/artifacts", uploadForm(b.csrf, "hello-worker", v, data)...)
		wantStatus(t, r, http.StatusSeeOther)
	}
	r := b.get("/artifacts")
	wantStatus(t, r, http.StatusOK)
	sum := sha256.Sum256(big)
	mustContain(t, r, `data-artifact="hello-worker"`, "Uploaded hello-worker 1.9.0-rc.1", hex.EncodeToString(sum[:])[:12],
		"2.0 MiB", "op@example.com", `id="upload-form"`, `enctype="multipart/form-data"`, "No device has reported a version of hello-worker.")
	i10, i9, i2 := strings.Index(r.Body, `data-version="1.10.0"`), strings.Index(r.Body, `data-version="1.9.0-rc.1"`), strings.Index(r.Body, `data-version="1.2.0"`)
	if !(i10 >= 0 && i10 < i9 && i9 < i2) {
		t.Fatalf("versions not newest first: 1.10.0 at %d, 1.9.0-rc.1 at %d, 1.2.0 at %d", i10, i9, i2)
	}
	if n := len(artifactRows(t, s)); n != 3 {
		t.Fatalf("%d artifact rows, want 3", n)
	}
	if n := storedFiles(t, dir); n != 3 {
		t.Fatalf("%d files stored, want 3", n)
	}
	if n := count(t, s, `SELECT count(*) FROM audit_log WHERE action = 'artifact.upload' AND outcome = 'ok'`); n != 3 {
		t.Fatalf("%d upload audit rows, want 3", n)
	}
}

// TestArtifactsUploadRefused: every refusal of an upload says why, keeps
// the values typed, and stores nothing (no row, no file).
func TestArtifactsUploadRefused(t *testing.T) {
	const max = 1000
	s, dir := artifactServer(t, max)
	op := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	viewer := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	op.get("/artifacts")
	wantStatus(t, op.postMultipart("/artifacts", uploadForm(op.csrf, "app", "1.0.0", []byte("first"))...), http.StatusSeeOther)
	atLimit := bytes.Repeat([]byte("x"), max)
	wantStatus(t, op.postMultipart("/artifacts", uploadForm(op.csrf, "app", "1.1.0", atLimit)...), http.StatusSeeOther)
	rows, files := len(artifactRows(t, s)), storedFiles(t, dir)
	if rows != 2 || files != 2 {
		t.Fatalf("after two uploads: %d rows, %d files", rows, files)
	}
	for _, c := range []struct {
		name   string
		b      *browser
		fields func(csrf string) []field
		status int
		want   []string
	}{
		{"one byte beyond the limit", op, func(c string) []field {
			return uploadForm(c, "app", "2.0.0", bytes.Repeat([]byte("x"), max+1))
		}, http.StatusRequestEntityTooLarge, []string{"The artifact is larger than this cloud&#39;s limit of 1000 bytes.", `value="2.0.0"`}},
		{"beyond the whole form's limit too", op, func(c string) []field {
			return uploadForm(c, "app", "2.0.1", bytes.Repeat([]byte("x"), 1<<20))
		}, http.StatusRequestEntityTooLarge, []string{"limit of 1000 bytes"}},
		{"a version that exists", op, func(c string) []field { return uploadForm(c, "app", "1.0.0", []byte("again")) },
			http.StatusUnprocessableEntity, []string{"Artifact app version 1.0.0 exists already", `value="app"`}},
		{"not a semantic version", op, func(c string) []field { return uploadForm(c, "app", "v1", []byte("x")) },
			http.StatusUnprocessableEntity, []string{"An artifact version is a semantic version", `value="v1"`}},
		{"a bad name", op, func(c string) []field { return uploadForm(c, "../etc", "1.0.0", []byte("x")) },
			http.StatusUnprocessableEntity, []string{"An artifact name is 1 to 64 of"}},
		{"no file", op, func(c string) []field { return uploadForm(c, "app", "3.0.0", nil)[:3] },
			http.StatusUnprocessableEntity, []string{"Choose a file to upload.", `value="3.0.0"`}},
		{"a viewer", viewer, func(c string) []field { return uploadForm(c, "app", "4.0.0", []byte("x")) },
			http.StatusForbidden, []string{"Your role (viewer) does not allow this; it needs operator."}},
		{"no CSRF token", op, func(c string) []field { return uploadForm(c, "app", "5.0.0", []byte("x"))[1:] },
			http.StatusForbidden, []string{"This form has expired."}},
		{"a wrong CSRF token", op, func(c string) []field { return uploadForm(otherToken(c), "app", "5.0.1", []byte("x")) },
			http.StatusForbidden, []string{"This form has expired."}},
		{"the CSRF token after the file", op, func(c string) []field {
			f := uploadForm(c, "app", "5.0.2", []byte("x"))
			return append(f[1:], f[0])
		}, http.StatusForbidden, []string{"This form has expired."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.b.get("/artifacts")
			r := c.b.postMultipart("/artifacts", c.fields(c.b.csrf)...)
			wantStatus(t, r, c.status)
			mustContain(t, r, c.want...)
			if n, f := len(artifactRows(t, s)), storedFiles(t, dir); n != rows || f != files {
				t.Fatalf("after the refusal: %d rows, %d files; want %d, %d", n, f, rows, files)
			}
		})
	}
	t.Run("not multipart", func(t *testing.T) {
		r := op.post("/artifacts", url.Values{"name": {"app"}, "version": {"6.0.0"}})
		wantStatus(t, r, http.StatusBadRequest)
		mustContain(t, r, "multipart/form-data")
		if n := len(artifactRows(t, s)); n != rows {
			t.Fatalf("%d rows", n)
		}
	})
	// Refusals of bad input are audited as errors; the role and CSRF
	// refusals never reach the service.
	if n := count(t, s, `SELECT count(*) FROM audit_log WHERE action = 'artifact.upload' AND outcome = 'error'`); n != 5 {
		t.Errorf("%d refused uploads audited, want 5 (limit twice, exists, version, name)", n)
	}
}

// TestArtifactsDelete: Delete asks first, then deletes; a viewer sees no
// button and may not; another organisation's artifact is not found; a
// bad CSRF token is refused. Nothing changes on any refusal.
func TestArtifactsDelete(t *testing.T) {
	s, dir := artifactServer(t, 1<<20)
	op := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	viewer := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	other := loggedIn(t, s, "op@b.example", fleet.RoleOperator, "org-b")
	op.get("/artifacts")
	wantStatus(t, op.postMultipart("/artifacts", uploadForm(op.csrf, "app", "1.0.0", []byte("one"))...), http.StatusSeeOther)
	art := artifactRows(t, s)[0]
	del := "/artifacts/" + itoa(art.ID) + "/delete"

	page := viewer.get("/artifacts")
	mustContain(t, page, `data-version="1.0.0"`)
	for _, no := range []string{"Delete…", `id="upload-form"`, "Deploy…"} {
		if strings.Contains(page.Body, no) {
			t.Errorf("a viewer's page shows %q", no)
		}
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if n, f := len(artifactRows(t, s)), storedFiles(t, dir); n != 1 || f != 1 {
			t.Fatalf("%d rows, %d files; want 1, 1", n, f)
		}
	}
	t.Run("asks first", func(t *testing.T) {
		r := op.post(del, nil)
		wantStatus(t, r, http.StatusOK)
		mustContain(t, r, "Delete app 1.0.0?", `name="confirm" value="yes"`)
		unchanged(t)
	})
	t.Run("viewer", func(t *testing.T) {
		viewer.get("/artifacts")
		wantStatus(t, viewer.post(del, url.Values{"confirm": {"yes"}}), http.StatusForbidden)
		unchanged(t)
	})
	t.Run("other organisation", func(t *testing.T) {
		other.get("/artifacts")
		if strings.Contains(other.get("/artifacts").Body, `data-artifact="app"`) {
			t.Error("another organisation sees the artifact")
		}
		wantStatus(t, other.post(del, url.Values{"confirm": {"yes"}}), http.StatusNotFound)
		unchanged(t)
	})
	t.Run("bad CSRF", func(t *testing.T) {
		wantStatus(t, op.post(del, url.Values{"confirm": {"yes"}, "csrf": {otherToken(op.csrf)}}), http.StatusForbidden)
		unchanged(t)
	})
	t.Run("no such artifact", func(t *testing.T) {
		wantStatus(t, op.post("/artifacts/999999/delete", url.Values{"confirm": {"yes"}}), http.StatusNotFound)
		wantStatus(t, op.post("/artifacts/x/delete", url.Values{"confirm": {"yes"}}), http.StatusNotFound)
		unchanged(t)
	})
	r := op.post(del, url.Values{"confirm": {"yes"}})
	wantStatus(t, r, http.StatusSeeOther)
	if n, f := len(artifactRows(t, s)), storedFiles(t, dir); n != 0 || f != 0 {
		t.Fatalf("after the deletion: %d rows, %d files", n, f)
	}
	mustContain(t, op.get("/artifacts"), "Deleted app 1.0.0.", "No artifacts yet.")
}

// TestArtifactsUploadSigned: a bundle uploaded with the targets.json that
// signs it (bosun release sign) is published with it and shows signed; one
// uploaded alone shows not signed, and why. A targets.json the release
// refuses, or one beyond its bound, keeps nothing: no row, no file, the
// release as it was.
func TestArtifactsUploadSigned(t *testing.T) {
	s, dir := artifactServer(t, 1<<20)
	repo := releaseOf(t, s)
	op := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	sign := func(name, version string, bundle []byte) []byte {
		t.Helper()
		f := filepath.Join(t.TempDir(), "bundle.tar.gz")
		os.WriteFile(f, bundle, 0o600)
		b, err := release.SignTarget(repo.Dir, name, version, f, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withTargets := func(name, version string, bundle, targets []byte) []field {
		f := uploadForm(op.csrf, name, version, bundle)
		return append(f[:3:3], field{"targets", string(targets), "targets.json"}, f[3])
	}
	releaseVersion := func() int64 {
		in, err := s.Service().Release(context.Background(), s.Super)
		if err != nil {
			t.Fatal(err)
		}
		return in.TargetsVersion
	}

	op.get("/artifacts")
	bundle := []byte("hello 2.0.0")
	r := op.postMultipart("/artifacts", withTargets("hello", "2.0.0", bundle, sign("hello", "2.0.0", bundle))...)
	wantStatus(t, r, http.StatusSeeOther)
	wantStatus(t, op.postMultipart("/artifacts", uploadForm(op.csrf, "hello", "2.1.0", []byte("unsigned"))...), http.StatusSeeOther)
	page := op.get("/artifacts")
	mustContain(t, page, "Uploaded hello 2.1.0", `id="upload-targets"`)
	row := func(version string) string {
		i := strings.Index(page.Body, `data-version="`+version+`"`)
		j := strings.Index(page.Body[i:], "</tr>")
		return page.Body[i : i+j]
	}
	if v := row("2.0.0"); !strings.Contains(v, `badge succeeded">signed<`) {
		t.Errorf("2.0.0 is not shown signed: %s", v)
	}
	if v := row("2.1.0"); !strings.Contains(v, ">not signed<") || !strings.Contains(v, "not in this organisation") {
		t.Errorf("2.1.0 is not shown unsigned with the reason: %s", v)
	}

	rows, files, version := len(artifactRows(t, s)), storedFiles(t, dir), releaseVersion()
	stale := sign("hello", "3.0.0", []byte("three")) // then superseded: an older targets version
	sign("hello", "3.0.1", []byte("three"))
	for _, c := range []struct {
		name    string
		targets []byte
		status  int
		want    string
	}{
		{"not metadata", []byte(`{"signed": {}}`), http.StatusUnprocessableEntity, "The targets.json was refused, so the bundle was not kept: "},
		{"older than the release's", stale, http.StatusUnprocessableEntity, "The targets.json was refused, so the bundle was not kept: "},
		{"beyond the bound", bytes.Repeat([]byte(" "), fleet.MaxSessionMetadata+1), http.StatusRequestEntityTooLarge, "larger than 524288 bytes; nothing was stored"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "older than the release's" {
				wantStatus(t, op.postMultipart("/artifacts", withTargets("hello", "3.0.1", []byte("three"), sign("hello", "3.0.2", []byte("x")))...), http.StatusSeeOther)
				op.post("/artifacts/"+itoa(artifactRows(t, s)[0].ID)+"/delete", url.Values{"confirm": {"yes"}})
				version = releaseVersion()
			}
			op.get("/artifacts")
			r := op.postMultipart("/artifacts", withTargets("hello", "3.0.0", []byte("three"), c.targets)...)
			wantStatus(t, r, c.status)
			mustContain(t, r, c.want, `value="3.0.0"`)
			if n, f, v := len(artifactRows(t, s)), storedFiles(t, dir), releaseVersion(); n != rows || f != files || v != version {
				t.Fatalf("after the refusal: %d rows, %d files, targets version %d; want %d, %d, %d", n, f, v, rows, files, version)
			}
		})
	}
}
