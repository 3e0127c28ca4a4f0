package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// TestPreauthFile: bosun preauth --file sends the devices 1000 per request
// and says how many were preauthorised; a bad file or a refused batch is
// an error and (for a bad file) nothing is sent.
func TestPreauthFile(t *testing.T) {
	var mu sync.Mutex
	var batches []int
	refuse := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method+" "+r.URL.Path != "POST /api/v1/devices/preauthorize" {
			http.NotFound(w, r)
			return
		}
		var req wire.PreauthorizeBulkRequest
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &req)
		mu.Lock()
		batches = append(batches, len(req.Devices))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if refuse {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"code":"invalid_request","message":"devices[3] (x): public key: bad"}}`)
			return
		}
		out := wire.PreauthorizeBulkResponse{Preauthorized: len(req.Devices)}
		for _, d := range req.Devices {
			out.Devices = append(out.Devices, wire.PreauthorizedEntry{ID: d.ID, Fingerprint: "SHA256:x"})
		}
		json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	env := map[string]string{"BOSUN_URL": srv.URL, "BOSUN_TOKEN": "bsn_good"}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var es []string
	for i := range 2500 {
		es = append(es, fmt.Sprintf(`{"id":"sim-%d","public_key":"AAAA"}`, i+1))
	}
	good := write("good.json", `{"devices":[`+strings.Join(es, ",")+`]}`)
	ctx := context.Background()

	r := runCLI(ctx, env, "preauth", "--file", good)
	if r.code != 0 || !strings.Contains(r.stdout, "preauthorized 2500 devices") {
		t.Fatalf("preauth --file: %+v", r)
	}
	if fmt.Sprint(batches) != "[1000 1000 500]" {
		t.Fatalf("batches %v, want [1000 1000 500]", batches)
	}

	for _, tc := range []struct{ name, file, want string }{
		{"not JSON", write("bad.json", `devices`), "want {"},
		{"unknown field", write("field.json", `{"devices":[{"id":"a","key":"b"}]}`), "unknown field"},
		{"empty", write("empty.json", `{"devices":[]}`), "no devices"},
		{"missing", filepath.Join(dir, "nope.json"), "no such file"},
	} {
		batches = nil
		if r := runCLI(ctx, env, "preauth", "--file", tc.file); r.code == 0 || !strings.Contains(r.stderr, tc.want) || len(batches) != 0 {
			t.Errorf("%s: %+v, %d requests sent; want an error naming %q and none sent", tc.name, r, len(batches), tc.want)
		}
	}
	if r := runCLI(ctx, env, "preauth", "--file", good, "dev-1"); r.code == 0 || !strings.Contains(r.stderr, "--file takes no device ID") {
		t.Errorf("--file with an id: %+v", r)
	}
	refuse, batches = true, nil
	if r := runCLI(ctx, env, "preauth", "--file", good); r.code == 0 || !strings.Contains(r.stderr, "devices 0 to 999") || !strings.Contains(r.stderr, "devices[3]") {
		t.Errorf("refused batch: %+v", r)
	}
}
