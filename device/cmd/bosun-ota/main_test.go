package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/release"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats.go"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	hook := filepath.Join(dir, "hook")
	os.WriteFile(hook, []byte("#!/bin/sh\n"), 0o755)
	notExec := filepath.Join(dir, "plain")
	os.WriteFile(notExec, []byte("x"), 0o644)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "defaults"},
		{name: "hook from env", env: map[string]string{"BOSUN_OTA_HOOK": hook}},
		{name: "hook not executable", args: []string{"--hook", notExec}, wantErr: "not an executable file"},
		{name: "hook missing", args: []string{"--hook", filepath.Join(dir, "none")}, wantErr: "not an executable file"},
		{name: "bad hook timeout", args: []string{"--hook-timeout", "-1s"}, wantErr: "positive duration"},
		{name: "stray argument", args: []string{"x"}, wantErr: "unexpected arguments"},
		{name: "cloud url", env: map[string]string{"BOSUN_CLOUD_URL": "wss://cloud.example:8443/v1/device"}},
		{name: "bad cloud url", args: []string{"--cloud-url", "ftp://x"}, wantErr: "want ws(s)://host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			if tt.name == "defaults" && (c.DataDir != worker.DefaultDataDir || c.HookTimeout != time.Minute || c.BaseURL != nil ||
				c.ReleaseRoot != filepath.Join(worker.DefaultDataDir, "release-root.json")) {
				t.Fatalf("%+v", c)
			}
			if tt.name == "cloud url" && (c.BaseURL == nil || c.BaseURL.String() != "https://cloud.example:8443") {
				t.Fatalf("base URL %v", c.BaseURL)
			}
		})
	}
}

func bundle(tb testing.TB, version string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	body := "#!/bin/sh\necho " + version + "\n"
	tw.WriteHeader(&tar.Header{Name: "run", Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg})
	io.WriteString(tw, body)
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startBridge(tb testing.TB, dataDir, natsAddr string) *bridge.Bridge {
	tb.Helper()
	pub, _, _ := ed25519.GenerateKey(nil)
	b, err := bridge.New(context.Background(), bridge.Options{DeviceID: "dev-1", DataDir: dataDir, CloudURL: "ws://127.0.0.1:1/v1/device",
		CloudKey: pub, NATSListen: natsAddr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// rpc sends a cloud → device request the way the bridge forwards it.
func rpc(tb testing.TB, nc *nats.Conn, method, params string) (json.RawMessage, *jsonrpc.Error) {
	tb.Helper()
	req := `{"jsonrpc":"2.0","id":1,"method":"` + method + `"`
	if params != "" {
		req += `,"params":` + params
	}
	req += "}"
	msg, err := nc.Request(rpcproto.SubjectRPCPrefix+method, []byte(req), 10*time.Second)
	if err != nil {
		tb.Fatalf("%s: %v", method, err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *jsonrpc.Error  `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		tb.Fatal(err)
	}
	return resp.Result, resp.Error
}

func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outboxStatuses reads the bridge's outbox: the ota.status reports in
// order, as "status" strings.
func outboxStatuses(tb testing.TB, dataDir string) []rpcproto.OTAStatusParams {
	tb.Helper()
	names, _ := filepath.Glob(filepath.Join(dataDir, "outbox", "*.json"))
	slices.Sort(names)
	var out []rpcproto.OTAStatusParams
	for _, n := range names {
		b, _ := os.ReadFile(n)
		var e struct {
			Method string                   `json:"method"`
			Params rpcproto.OTAStatusParams `json:"params"`
		}
		json.Unmarshal(b, &e)
		if e.Method != rpcproto.MethodOTAStatus {
			tb.Fatalf("outbox entry %s: method %q", n, e.Method)
		}
		out = append(out, e.Params)
	}
	return out
}

// releaseRepo makes a real release repository (pkg/release: operator keys,
// the cloud's online keys) with the bundles signed as hello VERSION, and
// returns its 1.root.json and a directory of the metadata a device
// fetches.
func releaseRepo(t *testing.T, bundles map[string][]byte) ([]byte, string) {
	t.Helper()
	dir := t.TempDir()
	online, err := release.OpenOnline(filepath.Join(dir, "online"), nil)
	if err != nil {
		t.Fatal(err)
	}
	op := filepath.Join(dir, "operator")
	if err := release.InitRepo(op, online.Keys()); err != nil {
		t.Fatal(err)
	}
	for v, body := range bundles {
		f := filepath.Join(dir, v+".tar.gz")
		os.WriteFile(f, body, 0o600)
		if _, err := release.SignTarget(op, "hello", v, f, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := os.ReadFile(filepath.Join(op, "1.root.json"))
	targets, _ := os.ReadFile(filepath.Join(op, "targets.json"))
	repo, err := online.Accept(release.Repo{}, root, targets)
	if err != nil {
		t.Fatal(err)
	}
	files, err := repo.Files()
	if err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, "metadata")
	os.Mkdir(meta, 0o700)
	for name, b := range files {
		os.WriteFile(filepath.Join(meta, name), b, 0o600)
	}
	return root, meta
}

func lastStatus(rs []rpcproto.OTAStatusParams) string {
	if len(rs) == 0 {
		return ""
	}
	return rs[len(rs)-1].Status
}

// TestWorkerThroughBridge runs bosun-ota against a real bridge (its
// embedded NATS and its outbox) and a real HTTP server: strict params, an
// update committed, an update rolled back while the bridge was down, and
// every report in the bridge's outbox in order, once.
func TestWorkerThroughBridge(t *testing.T) {
	dataDir := t.TempDir()
	addr := freeAddr(t)
	b := startBridge(t, dataDir, addr)
	defer func() { b.Close() }()

	v2, v3 := bundle(t, "2.0.0"), bundle(t, "3.0.0")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := v2
		if strings.Contains(r.URL.Path, "3.0.0") {
			body = v3
		}
		http.ServeContent(w, r, "b.tar.gz", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	root, metaDir := releaseRepo(t, map[string][]byte{"2.0.0": v2, "3.0.0": v3})
	rootFile := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(rootFile, root, 0o600)
	hookLog := filepath.Join(t.TempDir(), "hook.log")
	hook := filepath.Join(t.TempDir(), "hook.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\necho \"$BOSUN_OTA_REASON $BOSUN_OTA_SLOT $1\" >> "+hookLog+"\n"), 0o755)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, Config{DataDir: dataDir, Hook: hook, HookTimeout: 10 * time.Second, ReleaseRoot: rootFile, ReleaseMetadata: metaDir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	tok, _ := os.ReadFile(filepath.Join(dataDir, "nats.token"))
	nc, err := nats.Connect("nats://"+addr, nats.Token(strings.TrimSpace(string(tok))), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	eventually(t, "ota methods", func() bool {
		_, err := nc.Request(rpcproto.SubjectRPCPrefix+rpcproto.MethodOTAGetBootState, []byte(`{"jsonrpc":"2.0","id":1,"method":"ota.get_boot_state"}`), time.Second)
		return err == nil
	})
	res, e := rpc(t, nc, "ota.get_boot_state", "")
	if e != nil || string(res) != `{"active_slot":"a","is_committed":true,"revert_slot":"","commit_timeout":0}` {
		t.Fatalf("get_boot_state %s %v", res, e)
	}
	stateBefore, _ := os.ReadFile(filepath.Join(dataDir, "ota", "state.json"))
	for _, bad := range []string{
		`{"Target":"hello/2.0.0","url":"` + srv.URL + `/2.0.0"}`,
		`{"target":"hello/2.0.0","url":"` + srv.URL + `/2.0.0","commit_timeout":1,"commit_timeout":2}`,
		`{"target":"hello/2.0.0","url":"` + srv.URL + `/2.0.0","extra":1}`,
		`{"target":"hello/2.0.0","url":"ftp://x"}`,
	} {
		if _, e := rpc(t, nc, "ota.update", bad); e == nil || e.Code != jsonrpc.CodeInvalidParams {
			t.Fatalf("ota.update %s: %v", bad, e)
		}
	}
	if _, e := rpc(t, nc, "ota.commit", `{"x":1}`); e == nil || e.Code != jsonrpc.CodeInvalidParams {
		t.Fatalf("ota.commit with a member: %v", e)
	}
	if _, e := rpc(t, nc, "ota.revert", ""); e == nil || e.Code != rpcproto.CodeConflict {
		t.Fatalf("ota.revert when committed: %v", e)
	}
	if after, _ := os.ReadFile(filepath.Join(dataDir, "ota", "state.json")); !bytes.Equal(after, stateBefore) || b.OutboxLen() != 0 {
		t.Fatal("refused calls changed something")
	}

	// 1. An update, committed by "the new version".
	res, e = rpc(t, nc, "ota.update", `{"target":"hello/2.0.0","url":"`+srv.URL+`/2.0.0","commit_timeout":60}`)
	if e != nil {
		t.Fatal(e)
	}
	var ur rpcproto.OTAUpdateResult
	json.Unmarshal(res, &ur)
	eventually(t, "awaiting_commit in the outbox", func() bool { return lastStatus(outboxStatuses(t, dataDir)) == "awaiting_commit" })
	if _, e := rpc(t, nc, "ota.commit", ""); e != nil {
		t.Fatal(e)
	}
	eventually(t, "succeeded in the outbox", func() bool { return lastStatus(outboxStatuses(t, dataDir)) == "succeeded" })

	// 2. An update that never commits; the bridge is down when the
	// worker reverts and reports; the report arrives once it is back.
	res, e = rpc(t, nc, "ota.update", `{"target":"hello/3.0.0","url":"`+srv.URL+`/3.0.0","commit_timeout":1}`)
	if e != nil {
		t.Fatal(e)
	}
	var ur3 rpcproto.OTAUpdateResult
	json.Unmarshal(res, &ur3)
	eventually(t, "awaiting_commit of 3.0.0", func() bool {
		rs := outboxStatuses(t, dataDir)
		return lastStatus(rs) == "awaiting_commit" && rs[len(rs)-1].ID == ur3.ID
	})
	b.Close()
	eventually(t, "the revert, spooled by the worker", func() bool {
		ents, _ := filepath.Glob(filepath.Join(dataDir, "ota", "reports", "*.json"))
		return len(ents) > 0
	})
	b = startBridge(t, dataDir, addr)
	eventually(t, "rolled_back in the outbox", func() bool { return lastStatus(outboxStatuses(t, dataDir)) == "rolled_back" })
	res, _ = rpc(t, nc, "ota.get_boot_state", "")
	if string(res) != `{"active_slot":"b","is_committed":true,"revert_slot":"a","commit_timeout":0}` {
		t.Fatalf("after the revert: %s", res)
	}

	rs := outboxStatuses(t, dataDir)
	var got []string
	for i, r := range rs {
		if i > 0 && r.Seq != rs[i-1].Seq+1 {
			t.Fatalf("seq %d after %d: a report lost or doubled", r.Seq, rs[i-1].Seq)
		}
		if r.Status != "downloading" {
			got = append(got, r.ID[:4]+" "+r.Status)
		}
	}
	want := []string{ur.ID[:4] + " installing", ur.ID[:4] + " awaiting_commit", ur.ID[:4] + " succeeded",
		ur3.ID[:4] + " installing", ur3.ID[:4] + " awaiting_commit", ur3.ID[:4] + " rolled_back"}
	if !slices.Equal(got, want) {
		t.Fatalf("outbox %q, want %q", got, want)
	}
	hl, _ := os.ReadFile(hookLog)
	wantHook := fmt.Sprintf("update b %[1]s/b\nupdate a %[1]s/a\nrevert b %[1]s/b\n", filepath.Join(dataDir, "ota", "slots"))
	if string(hl) != wantHook {
		t.Fatalf("hook log %q, want %q", hl, wantHook)
	}
}
