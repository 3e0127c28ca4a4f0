package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/jackc/pgx/v5"
)

// bodyRoute is an endpoint that reads a JSON body, and the type its
// decoder fills (nil: the body is taken raw, as artifact metadata is).
type bodyRoute struct {
	method, path string
	into         func() any
}

func bodyRoutes(artifact int64) []bodyRoute {
	empty := func() any { return &struct{}{} }
	return []bodyRoute{
		{"POST", "/devices/dev-x/accept", func() any { return &wire.AcceptRequest{} }},
		{"POST", "/devices/dev-x/reject", empty},
		{"POST", "/devices/dev-x/decommission", empty},
		{"PUT", "/devices/dev-a/tags", func() any { return &wire.TagsRequest{} }},
		{"POST", "/devices/dev-b/preauthorize", func() any { return &wire.PreauthorizeRequest{} }},
		{"POST", "/devices/preauthorize", func() any { return &wire.PreauthorizeBulkRequest{} }},
		{"POST", "/devices/dev-a/call", func() any { return &wire.CallRequest{} }},
		{"POST", "/calls", func() any { return &wire.FanOutRequest{} }},
		{"POST", "/tokens", func() any { return &wire.CreateTokenRequest{} }},
		{"PUT", fmt.Sprintf("/artifacts/%d/metadata", artifact), nil},
		{"PUT", "/release", func() any { return &wire.ReleaseUpload{} }},
		{"POST", "/deployments", func() any { return &wire.DeploymentRequest{} }},
		{"POST", "/deployments/1/pause", empty},
	}
}

// apiState is what a request body could change: row counts of the
// tables the body routes write, the audit log's successful rows (a
// refused deployment or release upload is audited, outcome "error", on
// purpose), and the contents an update rewrites in place (tags,
// artifact metadata).
type apiState struct {
	audit, tokens, devices, keys, calls, deployments, releases int64
	tags, metadata                                             string
}

func readAPIState(ctx context.Context, tb testing.TB, db *pgx.Conn) apiState {
	tb.Helper()
	var s apiState
	err := db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM audit_log WHERE outcome <> 'error'), (SELECT count(*) FROM api_tokens), (SELECT count(*) FROM devices),
		(SELECT count(*) FROM device_keys), (SELECT count(*) FROM calls), (SELECT count(*) FROM deployments),
		(SELECT count(*) FROM release_roots),
		(SELECT coalesce(string_agg(id || '=' || array_to_string(tags, ','), ';' ORDER BY id), '') FROM devices),
		(SELECT coalesce(md5(string_agg(coalesce(metadata::text, ''), ';' ORDER BY id)), '') FROM artifacts)`).Scan(
		&s.audit, &s.tokens, &s.devices, &s.keys, &s.calls, &s.deployments, &s.releases, &s.tags, &s.metadata)
	if err != nil {
		tb.Fatalf("reading the state: %v", err)
	}
	return s
}

// maxAPIMessage bounds an error message: it names the field and the rule
// and quotes at most a little of the input.
const maxAPIMessage = 512

// FuzzRequestBodies posts arbitrary bodies to every endpoint of the API
// that reads a JSON body; the first byte picks the endpoint. The server is
// a real replica (cloudtest, real PostgreSQL), so the body meets the real
// decoder and the checks after it. Whatever the body:
//   - no 5xx; every 4xx has the API's error shape ({"error":{"code",
//     "message"}}), a code whose status is the answer's, and a message of
//     at most 512 bytes;
//   - a body that does not decode strictly into the endpoint's request
//     type is 400 invalid_request;
//   - a refused request changes nothing (row counts, tags, metadata, the
//     audit log but its "error" rows);
//   - an accepted body re-encodes to JSON that decodes to the same value.
func FuzzRequestBodies(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pem, err := keys.MarshalPublicPEM(pub)
	if err != nil {
		f.Fatal(err)
	}
	pemJSON, _ := json.Marshal(string(pem))
	for _, s := range []struct {
		r byte
		b string
	}{
		{0, ``}, {0, `{}`}, {0, `{"fingerprint":"SHA256:BuP9j9opu2CrWVV95h7bCuzbIxE0vjDnW0Vfjht5L6k"}`}, {0, `{"Fingerprint":"x"}`},
		{1, ``}, {1, `{}`}, {1, `{"reason":"x"}`}, {2, `{}`}, {2, `[]`},
		{3, `{"tags":["lab","kitchen"]}`}, {3, `{"tags":[]}`}, {3, `{}`}, {3, `{"tags":[" "]}`}, {3, `{"tags":"lab"}`}, {3, `{"tags":[1]}`},
		{4, `{"public_key":` + string(pemJSON) + `}`}, {4, `{"public_key":"AAAA"}`}, {4, `{"public_key":""}`},
		{5, `{"devices":[{"id":"dev-c","public_key":` + string(pemJSON) + `}]}`}, {5, `{"devices":[]}`},
		{5, `{"devices":[{"id":"dev-d","public_key":"nope"}]}`},
		{6, `{"method":"system.info"}`}, {6, `{"method":"py.echo","params":{"a":1},"timeout":"10s","ttl":"1h"}`},
		{6, `{"method":"x","params":1}`}, {6, `{"method":"x","timeout":"forever"}`}, {6, `{"method":"x","ttl":"-1s"}`}, {6, `{}`},
		{7, `{"tag":"lab","method":"system.info","timeout":"1s"}`}, {7, `{"devices":["dev-a"],"method":"rpc.list","timeout":"1s"}`},
		{7, `{"devices":["dev-a"],"tag":"lab","method":"x"}`}, {7, `{"method":"x"}`},
		{8, `{"name":"ci"}`}, {8, `{"name":" "}`}, {8, `{"name":"ci","role":"super"}`},
		{9, `{"signed":{}}`}, {9, `not json`}, {9, ``},
		{10, `{}`}, {10, `{"roots":["e30="],"targets":"e30="}`}, {10, `{"roots":["!"]}`},
		{11, `{"name":"hello","version":"1.0.0","tag":"lab","phases":[1,100],"max_in_flight":2,"commit_timeout":60,"not_before":"2026-12-01T00:00:00Z"}`},
		{11, `{"name":"hello","version":"9.9.9","devices":["dev-a"]}`}, {11, `{"name":"hello"}`}, {11, `{"name":"hello","version":"1.0.0","phases":[101]}`},
		{12, `{}`}, {12, `{"x":1}`},
		{0, `{"fingerprint":"a"} {}`}, {3, `{"tags":["a"],"tags":["b"]}`}, {8, `{"name":"ci"`},
	} {
		f.Add(s.r, []byte(s.b))
	}

	srv := cloudtest.NewServer(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token := srv.Token(f)
	art, err := srv.Service().UploadArtifact(ctx, srv.Super, "hello", "1.0.0", 5, bytes.NewReader([]byte("hello")))
	if err != nil {
		f.Fatal(err)
	}
	routes := bodyRoutes(art.ID)
	client := &http.Client{Timeout: 20 * time.Second}
	do := func(tb testing.TB, rt bodyRoute, body []byte) (int, []byte) {
		tb.Helper()
		req, err := http.NewRequest(rt.method, srv.URL()+"/api/v1"+rt.path, bytes.NewReader(body))
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			tb.Fatalf("%s %s: %v", rt.method, rt.path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			tb.Fatalf("%s %s: reading the answer: %v", rt.method, rt.path, err)
		}
		return resp.StatusCode, b
	}
	// dev-a exists (preauthorized), so that tags and calls reach past
	// the device lookup.
	if st, b := do(f, routes[4], []byte(`{"public_key":`+string(pemJSON)+`}`)); st != http.StatusOK {
		f.Fatalf("preauthorizing dev-b: %d %s", st, b)
	}
	if st, b := do(f, bodyRoute{"POST", "/devices/dev-a/preauthorize", nil}, []byte(`{"public_key":`+string(pemJSON)+`}`)); st != http.StatusOK {
		f.Fatalf("preauthorizing dev-a: %d %s", st, b)
	}
	db, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close(context.Background()) })

	f.Fuzz(func(t *testing.T, which byte, body []byte) {
		rt := routes[int(which)%len(routes)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		before := readAPIState(ctx, t, db)
		status, answer := do(t, rt, body)
		after := readAPIState(ctx, t, db)
		what := fmt.Sprintf("%s %s %q", rt.method, rt.path, body)
		if status >= 500 {
			t.Fatalf("%s: %d %s", what, status, answer)
		}
		var v any
		decodes := true
		if rt.into != nil {
			v = rt.into()
			decodes = strictDecode(body, v, rt.path)
		}
		if status >= 400 {
			var e wire.ErrorBody
			dec := json.NewDecoder(bytes.NewReader(answer))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" || wire.StatusOf(e.Error.Code) != status {
				t.Fatalf("%s: %d %q is not the API's error shape (%v)", what, status, answer, err)
			}
			if len(e.Error.Message) > maxAPIMessage {
				t.Fatalf("%s: a message of %d bytes: %.200q...", what, len(e.Error.Message), e.Error.Message)
			}
			if !decodes && (status != http.StatusBadRequest || e.Error.Code != wire.CodeInvalidRequest) {
				t.Fatalf("%s: a body that does not decode got %d %s, want 400 invalid_request", what, status, answer)
			}
			if after != before {
				t.Fatalf("%s: refused (%d %s) but the state changed: %+v -> %+v", what, status, answer, before, after)
			}
			return
		}
		if !decodes {
			t.Fatalf("%s: accepted (%d %s) a body that does not decode strictly", what, status, answer)
		}
		if v != nil {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: %+v does not re-encode: %v", what, v, err)
			}
			again := rt.into()
			if !strictDecode(b, again, rt.path) || !sameJSON(v, again) {
				t.Fatalf("%s: re-encodes to %s, which decodes to %+v", what, b, again)
			}
		}
	})
}

// strictDecode is the API's rule for a body: one JSON value of the
// type, no unknown member; an empty body only where the body is
// optional (accept and the actions without a body).
func strictDecode(body []byte, v any, path string) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		_, optional := v.(*struct{})
		return optional || strings.HasSuffix(path, "/accept")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// sameJSON reports whether a and b encode to the same JSON.
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
