package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// artifactServer starts a replica whose artifacts live in a directory the
// test can look into.
func artifactServer(t *testing.T, opts ...func(*server.Config)) (*cloudtest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	srv := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
		c.DataDir = dir
		for _, o := range opts {
			o(c)
		}
	}))
	return srv, filepath.Join(dir, "artifacts", "sha256")
}

// upload posts body as name@version; chunked hides the length.
func upload(t *testing.T, base, token, name, version string, body []byte, chunked bool) (int, []byte) {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // not a *bytes.Reader: no Content-Length
	}
	req, err := http.NewRequest("POST", base+"/api/v1/artifacts?name="+name+"&version="+version, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func rowCount(t *testing.T, srv *cloudtest.Server) int {
	t.Helper()
	var n int
	if err := srv.Service().Store().Pool().QueryRow(context.Background(), `SELECT count(*) FROM artifacts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestArtifactsUploadListDeleteRoles(t *testing.T) {
	srv, dir := artifactServer(t)
	base := srv.URL()
	rt := newRoleTokens(t, srv)
	bundle := []byte("bundle v1 bytes")

	// A viewer may not upload; nothing is stored.
	status, b := upload(t, base, rt.viewer, "hello", "1.0.0", bundle, false)
	if status != 403 || rowCount(t, srv) != 0 || len(files(t, dir)) != 0 {
		t.Fatalf("viewer upload: %d %s, rows %d, files %v", status, b, rowCount(t, srv), files(t, dir))
	}
	// Bad names and versions are refused with a reason; nothing stored.
	for _, tc := range []struct{ name, version, want string }{
		{"Hello", "1.0.0", "artifact name"},
		{"hello", "v1.0.0", "semantic version"},
		{"hello", "1.0", "semantic version"},
		{"", "1.0.0", "artifact name"},
	} {
		status, b := upload(t, base, rt.operator, tc.name, tc.version, bundle, false)
		if status != 400 || !strings.Contains(string(b), tc.want) {
			t.Errorf("upload %q %q: %d %s, want 400 naming %q", tc.name, tc.version, status, b, tc.want)
		}
	}
	if rowCount(t, srv) != 0 || len(files(t, dir)) != 0 {
		t.Fatalf("refused uploads stored rows %d files %v", rowCount(t, srv), files(t, dir))
	}
	// Wrong media type.
	resp, b := send(t, base, "POST", "/api/v1/artifacts?name=hello&version=1.0.0", rt.operator, "{}")
	if resp.StatusCode != 415 {
		t.Fatalf("json upload: %d %s", resp.StatusCode, b)
	}

	status, b = upload(t, base, rt.operator, "hello", "1.0.0", bundle, false)
	if status != 201 {
		t.Fatalf("upload: %d %s", status, b)
	}
	a1 := decode[wire.Artifact](t, b)
	if a1.SHA256 != hexSHA(bundle) || a1.Length != int64(len(bundle)) || a1.Name != "hello" || a1.Version != "1.0.0" || a1.UploadedBy != "op@bosun.test" {
		t.Fatalf("artifact %+v", a1)
	}
	if got := files(t, dir); !slices.Equal(got, []string{hexSHA(bundle)}) {
		t.Fatalf("files %v", got)
	}
	// The same (name, version) again: conflict, still one row and one file.
	status, b = upload(t, base, rt.operator, "hello", "1.0.0", []byte("other bytes"), false)
	if status != 409 || !strings.Contains(string(b), "exists already") || rowCount(t, srv) != 1 || len(files(t, dir)) != 1 {
		t.Fatalf("conflict: %d %s rows %d files %v", status, b, rowCount(t, srv), files(t, dir))
	}
	// The same bytes as another version: a new row, the same file.
	status, b = upload(t, base, rt.operator, "hello", "1.1.0-rc.1", bundle, true)
	if status != 201 {
		t.Fatalf("second version: %d %s", status, b)
	}
	a2 := decode[wire.Artifact](t, b)
	status, b = upload(t, base, rt.operator, "hello", "1.1.0", []byte("v1.1.0"), false)
	if status != 201 {
		t.Fatalf("third version: %d %s", status, b)
	}
	a3 := decode[wire.Artifact](t, b)
	if rowCount(t, srv) != 3 || len(files(t, dir)) != 2 {
		t.Fatalf("rows %d files %v, want 3 and 2", rowCount(t, srv), files(t, dir))
	}

	// A viewer lists, newest version first; the other organisation sees none.
	resp, b = send(t, base, "GET", "/api/v1/artifacts?name=hello", rt.viewer, "")
	list := decode[wire.ArtifactList](t, b)
	var versions []string
	for _, a := range list.Items {
		versions = append(versions, a.Version)
	}
	if resp.StatusCode != 200 || !slices.Equal(versions, []string{"1.1.0", "1.1.0-rc.1", "1.0.0"}) {
		t.Fatalf("list: %d %v", resp.StatusCode, versions)
	}
	resp, b = send(t, base, "GET", "/api/v1/artifacts", rt.other, "")
	if list := decode[wire.ArtifactList](t, b); resp.StatusCode != 200 || len(list.Items) != 0 {
		t.Fatalf("other org list: %d %s", resp.StatusCode, b)
	}
	path := fmt.Sprintf("/api/v1/artifacts/%d", a1.ID)
	for _, tc := range []struct {
		method, token string
		status        int
	}{
		{"GET", rt.other, 404}, {"DELETE", rt.other, 404}, {"DELETE", rt.viewer, 403}, {"GET", rt.viewer, 200},
	} {
		resp, b := send(t, base, tc.method, path, tc.token, "")
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, path, resp.StatusCode, b, tc.status)
		}
	}
	if rowCount(t, srv) != 3 || len(files(t, dir)) != 2 {
		t.Fatalf("refused deletions changed rows %d files %v", rowCount(t, srv), files(t, dir))
	}
	// Metadata is stored as it is.
	resp, b = send(t, base, "PUT", path+"/metadata", rt.operator, `{"signed":{"_type":"targets"}}`)
	if resp.StatusCode != 204 {
		t.Fatalf("metadata: %d %s", resp.StatusCode, b)
	}
	resp, b = send(t, base, "PUT", path+"/metadata", rt.operator, `[1]`)
	if resp.StatusCode != 400 {
		t.Fatalf("array metadata: %d %s", resp.StatusCode, b)
	}
	_, b = send(t, base, "GET", path, rt.viewer, "")
	if got := decode[wire.Artifact](t, b); !strings.Contains(string(got.Metadata), `"targets"`) {
		t.Fatalf("metadata not kept: %s", b)
	}

	// Deleting one of two rows naming the bytes keeps them; the last removes them.
	if resp, b := send(t, base, "DELETE", path, rt.operator, ""); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	if !slices.Contains(files(t, dir), hexSHA(bundle)) {
		t.Fatal("bytes removed while a row names them")
	}
	if resp, b := send(t, base, "DELETE", fmt.Sprintf("/api/v1/artifacts/%d", a2.ID), rt.operator, ""); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	if got := files(t, dir); !slices.Equal(got, []string{hexSHA([]byte("v1.1.0"))}) {
		t.Fatalf("files after deleting the last row: %v", got)
	}
	if resp, _ := send(t, base, "DELETE", path, rt.operator, ""); resp.StatusCode != 404 {
		t.Fatalf("delete twice: %d", resp.StatusCode)
	}
	_ = a3
	entries, err := srv.Service().AuditLog(context.Background(), srv.Super, fleet.AuditFilter{Action: "artifact.delete"})
	if err != nil || len(entries) != 2 {
		t.Fatalf("audit: %v %d rows", err, len(entries))
	}
}

// TestArtifactSizeLimit: at the limit accepted, one byte beyond refused
// with 413 whether the length is announced or not, and nothing stays.
func TestArtifactSizeLimit(t *testing.T) {
	const max = 4096
	srv, dir := artifactServer(t, func(c *server.Config) { c.MaxArtifactSize = max })
	tok := srv.Token(t)
	at := bytes.Repeat([]byte("a"), max)
	if status, b := upload(t, srv.URL(), tok, "big", "1.0.0", at, true); status != 201 {
		t.Fatalf("at the limit: %d %s", status, b)
	}
	beyond := append(bytes.Repeat([]byte("b"), max), 'b')
	for _, chunked := range []bool{false, true} {
		status, b := upload(t, srv.URL(), tok, "big", "2.0.0", beyond, chunked)
		if status != 413 || errorOf413(t, b) != wire.CodeTooLarge {
			t.Fatalf("beyond the limit (chunked %v): %d %s", chunked, status, b)
		}
	}
	if rowCount(t, srv) != 1 || !slices.Equal(files(t, dir), []string{hexSHA(at)}) {
		t.Fatalf("after refusals: rows %d files %v", rowCount(t, srv), files(t, dir))
	}
}

func errorOf413(t *testing.T, b []byte) string {
	t.Helper()
	return decode[wire.ErrorBody](t, b).Error.Code
}

// TestArtifactSameBytesConcurrently: uploads of the same bytes racing
// with the deletion of the last row naming them never leave a row without
// its file, nor a file without a row.
func TestArtifactSameBytesConcurrently(t *testing.T) {
	srv, dir := artifactServer(t)
	tok := srv.Token(t)
	ctx := context.Background()
	svc := srv.Service()
	bundle := bytes.Repeat([]byte("same "), 10000)
	for round := 0; round < 20; round++ {
		v0 := fmt.Sprintf("%d.0.0", round)
		status, b := upload(t, srv.URL(), tok, "race", v0, bundle, false)
		if status != 201 {
			t.Fatalf("round %d: %d %s", round, status, b)
		}
		first := decode[wire.Artifact](t, b)
		var wg sync.WaitGroup
		var codes [4]int
		wg.Add(5)
		go func() {
			defer wg.Done()
			if err := svc.DeleteArtifact(ctx, srv.Super, first.ID); err != nil {
				t.Errorf("delete: %v", err)
			}
		}()
		for i := range codes {
			go func() {
				defer wg.Done()
				codes[i], _ = upload(t, srv.URL(), tok, "race", fmt.Sprintf("%d.0.%d", round, i+1), bundle, i%2 == 0)
			}()
		}
		wg.Wait()
		for i, c := range codes {
			if c != 201 {
				t.Fatalf("round %d upload %d: %d", round, i, c)
			}
		}
		list, _ := svc.ListArtifacts(ctx, srv.Super, fleet.ArtifactFilter{Name: "race"})
		if len(list) != 4 || !slices.Contains(files(t, dir), hexSHA(bundle)) {
			t.Fatalf("round %d: %d rows, files %v: a row without its file", round, len(list), files(t, dir))
		}
		for _, a := range list {
			if err := svc.DeleteArtifact(ctx, srv.Super, a.ID); err != nil {
				t.Fatal(err)
			}
		}
		if got := files(t, dir); len(got) != 0 {
			t.Fatalf("round %d: files %v without rows", round, got)
		}
	}
}

// otaCall calls a device → cloud method from d.
func otaCall[T any](t *testing.T, d *cloudtest.Device, method, name string) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out T
	err := d.Peer.Call(ctx, method, map[string]string{"name": name}, &out)
	return out, err
}

func TestOTAMethodsAndDownload(t *testing.T) {
	srv, _ := artifactServer(t)
	ctx := context.Background()
	svc := srv.Service()
	base := srv.URL()
	rt := newRoleTokens(t, srv)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes
	n := len(payload)
	for _, v := range []string{"1.0.0", "0.9.0", "1.1.0", "1.1.0-rc.1"} {
		body := payload
		if v != "1.1.0" {
			body = []byte("old " + v)
		}
		if status, b := upload(t, base, rt.operator, "hello", v, body, false); status != 201 {
			t.Fatalf("upload %s: %d %s", v, status, b)
		}
	}
	other := srv.Actor(t, "op2@elsewhere.test", fleet.RoleOperator, "elsewhere")
	if _, err := svc.UploadArtifact(ctx, other, "hello", "9.0.0", -1, strings.NewReader("elsewhere")); err != nil {
		t.Fatal(err)
	}

	// A pending device may not ask.
	pending := cloudtest.MustConnect(t, srv, "ota-pending", cloudtest.DeviceOptions{})
	_, err := otaCall[fleet.OTAVersion](t, pending, fleet.MethodOTALatest, "hello")
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != rpcproto.CodeNotAccepted {
		t.Fatalf("pending device: %v", err)
	}

	dev := acceptedDevice(t, srv, "ota-dev")
	avail, err := otaCall[fleet.OTAAvailableResult](t, dev, fleet.MethodOTAAvailable, "hello")
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, v := range avail.Versions {
		versions = append(versions, v.Version)
	}
	if !slices.Equal(versions, []string{"1.1.0", "1.1.0-rc.1", "1.0.0", "0.9.0"}) {
		t.Fatalf("ota.available: %v", versions)
	}
	latest, err := otaCall[fleet.OTAVersion](t, dev, fleet.MethodOTALatest, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != "1.1.0" || latest.SHA256 != hexSHA(payload) || latest.Length != int64(n) ||
		!strings.HasPrefix(latest.URL, fleet.DownloadPath) || time.Until(latest.Expires) > fleet.DefaultDownloadTokenTTL {
		t.Fatalf("ota.latest: %+v", latest)
	}
	for _, bad := range []string{"nothing-here", "Bad/Name"} {
		if _, err := otaCall[fleet.OTAVersion](t, dev, fleet.MethodOTALatest, bad); !errors.As(err, &je) || je.Code != jsonrpc.CodeInvalidParams {
			t.Fatalf("ota.latest %q: %v", bad, err)
		}
	}
	if got, err := otaCall[fleet.OTAAvailableResult](t, dev, fleet.MethodOTAAvailable, "nothing-here"); err != nil || len(got.Versions) != 0 {
		t.Fatalf("ota.available of no artifact: %+v %v", got, err)
	}

	get := func(url string, rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+url, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, tc := range []struct {
		name, rng    string
		status       int
		contentRange string
		body         []byte
	}{
		{"whole", "", 200, "", payload},
		{"first byte", "bytes=0-0", 206, fmt.Sprintf("bytes 0-0/%d", n), payload[:1]},
		{"last byte", fmt.Sprintf("bytes=%d-%d", n-1, n-1), 206, fmt.Sprintf("bytes %d-%d/%d", n-1, n-1, n), payload[n-1:]},
		{"resume", "bytes=10000-", 206, fmt.Sprintf("bytes 10000-%d/%d", n-1, n), payload[10000:]},
		{"suffix", "bytes=-10", 206, fmt.Sprintf("bytes %d-%d/%d", n-10, n-1, n), payload[n-10:]},
		{"end clamped", fmt.Sprintf("bytes=%d-%d", n-2, n+100), 206, fmt.Sprintf("bytes %d-%d/%d", n-2, n-1, n), payload[n-2:]},
		{"beyond end", fmt.Sprintf("bytes=%d-", n), 416, fmt.Sprintf("bytes */%d", n), nil},
	} {
		resp, b := get(latest.URL, tc.rng)
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Range") != tc.contentRange || (tc.body != nil && !bytes.Equal(b, tc.body)) {
			t.Errorf("%s (%q): %d %q, %d bytes", tc.name, tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
		}
	}
	resp, b := get(latest.URL, "bytes=0-0,5-5")
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") ||
		!bytes.Contains(b, []byte("Content-Range: bytes 0-0/")) || !bytes.Contains(b, []byte("Content-Range: bytes 5-5/")) {
		t.Errorf("multiple ranges: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Misuse: nothing served, nothing changed.
	token := strings.TrimPrefix(latest.URL, fleet.DownloadPath)
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	tamper := func(i int) string {
		c := slices.Clone(raw)
		c[i] ^= 1
		return fleet.DownloadPath + base64.RawURLEncoding.EncodeToString(c)
	}
	art1, err := svc.Store().ArtifactByVersion(ctx, rt.opActor.OrgID, "hello", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	elsewhereArt, _ := svc.ListArtifacts(ctx, other, fleet.ArtifactFilter{Name: "hello"})
	otherDevTok, _, _ := svc.DownloadToken(ctx, "no-such-device", art1)
	crossOrgTok, _, _ := svc.DownloadToken(ctx, "ota-dev", elsewhereArt[0]) // ota-dev is not of that org
	rowsBefore := rowCount(t, srv)
	for _, tc := range []struct {
		name, url string
		status    int
	}{
		{"other artifact id", tamper(8), 403},
		{"later expiry", tamper(16), 403},
		{"other device", tamper(len(raw) - 33), 403},
		{"mac", tamper(len(raw) - 1), 403},
		{"garbage", fleet.DownloadPath + "not-a-token", 403},
		{"empty", fleet.DownloadPath, 404},
		{"unknown device", fleet.DownloadPath + otherDevTok, 403},
		{"device of another org", fleet.DownloadPath + crossOrgTok, 403},
	} {
		resp, b := get(tc.url, "")
		if resp.StatusCode != tc.status || bytes.Contains(b, payload[:32]) || bytes.Contains(b, []byte("elsewhere")) {
			t.Errorf("%s: %d %q", tc.name, resp.StatusCode, b)
		}
	}
	if rowCount(t, srv) != rowsBefore {
		t.Fatal("refused downloads changed rows")
	}

	// A token of a deleted artifact: 404; of a rejected device: 403.
	old, err := otaCall[fleet.OTAAvailableResult](t, dev, fleet.MethodOTAAvailable, "hello")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := svc.ListArtifacts(ctx, srv.Super, fleet.ArtifactFilter{Name: "hello"})
	for _, a := range list {
		if a.Version == "0.9.0" && a.OrgID == rt.opActor.OrgID {
			if err := svc.DeleteArtifact(ctx, srv.Super, a.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if resp, _ := get(old.Versions[3].URL, ""); resp.StatusCode != 404 {
		t.Fatalf("deleted artifact: %d", resp.StatusCode)
	}
	if resp, _ := get(old.Versions[0].URL, "bytes=0-0"); resp.StatusCode != 206 {
		t.Fatalf("before rejecting: %d", resp.StatusCode)
	}
	if err := svc.Reject(ctx, srv.Super, "ota-dev"); err != nil {
		t.Fatal(err)
	}
	if resp, b := get(old.Versions[0].URL, ""); resp.StatusCode != 403 || bytes.Contains(b, payload[:32]) {
		t.Fatalf("rejected device: %d", resp.StatusCode)
	}
}

// TestDownloadTokenExpires: a token stops working after its TTL.
func TestDownloadTokenExpires(t *testing.T) {
	srv, _ := artifactServer(t, func(c *server.Config) { c.DownloadTokenTTL = time.Second })
	if status, b := upload(t, srv.URL(), srv.Token(t), "hello", "1.0.0", []byte("x"), false); status != 201 {
		t.Fatalf("upload: %d %s", status, b)
	}
	dev := acceptedDevice(t, srv, "ota-exp")
	latest, err := otaCall[fleet.OTAVersion](t, dev, fleet.MethodOTALatest, "hello")
	if err != nil {
		t.Fatal(err)
	}
	status := func() int {
		resp, err := http.Get(srv.URL() + latest.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != 200 && time.Now().Before(latest.Expires) {
		t.Fatalf("fresh token: %d", s)
	}
	cloudtest.Eventually(t, 5*time.Second, func() bool { return status() == 403 }, "the token still works after %s", latest.Expires)
	if time.Now().Before(latest.Expires) {
		t.Fatalf("refused before it expired at %s", latest.Expires)
	}
}

// TestArtifactSameVersionConcurrently: uploads of one (name, version) with
// different bytes racing: one wins, the others are 409 and leave no file.
func TestArtifactSameVersionConcurrently(t *testing.T) {
	srv, dir := artifactServer(t)
	tok := srv.Token(t)
	for round := 0; round < 10; round++ {
		version := fmt.Sprintf("1.0.%d", round)
		var wg sync.WaitGroup
		codes := make([]int, 4)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _ = upload(t, srv.URL(), tok, "contest", version, []byte(fmt.Sprintf("bytes %d of round %d", i, round)), false)
			}()
		}
		wg.Wait()
		slices.Sort(codes)
		if !slices.Equal(codes, []int{201, 409, 409, 409}) {
			t.Fatalf("round %d: codes %v", round, codes)
		}
		if n, f := rowCount(t, srv), len(files(t, dir)); n != round+1 || f != round+1 {
			t.Fatalf("round %d: %d rows, %d files", round, n, f)
		}
	}
}
