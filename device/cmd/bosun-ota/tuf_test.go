package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bosunhq/bosun/pkg/release"
)

// metaSet writes repo's files (what a device fetches) into a new
// directory.
func metaSet(t *testing.T, repo release.Repo) string {
	t.Helper()
	files, err := repo.Files()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range files {
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	return dir
}

// dirTree lists the files under dir with their contents, for "untouched".
func dirTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		c, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		b.WriteString(rel + "=" + string(c) + "\n")
		return nil
	})
	return b.String()
}

// TestUpdateRefusedByTUF runs the real worker (TUF verification against
// its pinned root) and refuses, each with its reason and with the active
// slot, its content and the boot state untouched: a version the release
// key never signed, bytes other than the signed ones, expired metadata,
// and metadata older than what the device already trusts (a rollback).
// Only the wrong bytes are downloaded at all.
func TestUpdateRefusedByTUF(t *testing.T) {
	dir := t.TempDir()
	online, err := release.OpenOnline(filepath.Join(dir, "online"), nil)
	if err != nil {
		t.Fatal(err)
	}
	op := filepath.Join(dir, "operator")
	if err := release.InitRepo(op, online.Keys()); err != nil {
		t.Fatal(err)
	}
	root, _ := os.ReadFile(filepath.Join(op, "1.root.json"))
	targets1, _ := os.ReadFile(filepath.Join(op, "targets.json"))
	repo, err := online.Accept(release.Repo{}, root, targets1)
	if err != nil {
		t.Fatal(err)
	}
	v2, v3, v4 := bundle(t, "2.0.0"), bundle(t, "3.0.0"), bundle(t, "4.0.0")
	sign := func(version string, body []byte, expires time.Duration) []byte {
		f := filepath.Join(t.TempDir(), "b")
		os.WriteFile(f, body, 0o600)
		b, err := release.SignTarget(op, "hello", version, f, expires)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The "old" set lists 3.0.0 (targets v2); the current one adds 2.0.0
	// and 4.0.0 (v3), where 4.0.0 is signed for other bytes than served.
	if repo, err = online.Accept(repo, nil, sign("3.0.0", v3, time.Hour)); err != nil {
		t.Fatal(err)
	}
	oldSet := metaSet(t, repo)
	sign("2.0.0", v2, time.Hour)
	signed4 := bytes.Clone(v4)
	signed4[len(signed4)/2] ^= 0xff // as long as what is served, other bytes
	if repo, err = online.Accept(repo, nil, sign("4.0.0", signed4, time.Hour)); err != nil {
		t.Fatal(err)
	}
	current := metaSet(t, repo)
	// An expired set: targets v4 valid for one second.
	expiring, err := online.Accept(repo, nil, sign("5.0.0", v2, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	expiredSet := metaSet(t, expiring)

	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body := map[string][]byte{"/2.0.0": v2, "/3.0.0": v3, "/4.0.0": v4, "/5.0.0": v2}[r.URL.Path]
		http.ServeContent(w, r, "b.tar.gz", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()

	dataDir := t.TempDir()
	addr := freeAddr(t)
	b := startBridge(t, dataDir, addr)
	defer b.Close()
	rootFile := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(rootFile, root, 0o600)
	meta := filepath.Join(t.TempDir(), "metadata") // a symlink, switched between sets
	os.Symlink(current, meta)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, Config{DataDir: dataDir, HookTimeout: 10 * time.Second, ReleaseRoot: rootFile, ReleaseMetadata: meta},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	tok, _ := os.ReadFile(filepath.Join(dataDir, "nats.token"))
	nc, err := nats.Connect("nats://"+addr, nats.Token(strings.TrimSpace(string(tok))))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	eventually(t, "ota methods", func() bool {
		_, err := nc.Request("bosun.rpc.ota.get_boot_state", []byte(`{"jsonrpc":"2.0","id":1,"method":"ota.get_boot_state"}`), time.Second)
		return err == nil
	})

	update := func(version string) string {
		t.Helper()
		n := len(outboxStatuses(t, dataDir))
		if _, e := rpc(t, nc, "ota.update", `{"target":"hello/`+version+`","url":"`+srv.URL+`/`+version+`","commit_timeout":0}`); e != nil {
			t.Fatalf("ota.update %s: %v", version, e)
		}
		var last string
		eventually(t, "the outcome of "+version, func() bool {
			rs := outboxStatuses(t, dataDir)
			if len(rs) <= n {
				return false
			}
			last = rs[len(rs)-1].Status
			if last == "failed" || last == "succeeded" {
				last += ": " + rs[len(rs)-1].Reason
				return true
			}
			return false
		})
		return last
	}
	swap := func(set string) {
		os.Remove(meta)
		os.Symlink(set, meta)
	}
	// What must stay: the active slot, committed, with its content. (An
	// update that starts gives up the inactive slot as a revert target, so
	// revert_slot is not compared.)
	state := func() string {
		res, _ := rpc(t, nc, "ota.get_boot_state", "")
		var bs struct {
			Active    string `json:"active_slot"`
			Committed bool   `json:"is_committed"`
		}
		json.Unmarshal(res, &bs)
		return fmt.Sprintf("active %s committed %v\n", bs.Active, bs.Committed) + dirTree(t, filepath.Join(dataDir, "ota", "current")+"/")
	}

	// A signed update works, and the device now trusts targets v3.
	if got := update("2.0.0"); got != "succeeded: " {
		t.Fatalf("2.0.0: %s", got)
	}
	before := state()
	for _, tt := range []struct {
		version, set, want string
		downloads          bool
	}{
		{"9.9.9", current, "no such target", false},
		{"4.0.0", current, "does not match the target", true},
		{"5.0.0", expiredSet, "expired", false},
		{"3.0.0", oldSet, "older than the trusted version", false},
	} {
		if tt.set == expiredSet {
			time.Sleep(1100 * time.Millisecond) // let the one-second targets expire
		}
		swap(tt.set)
		hits.Store(0)
		got := update(tt.version)
		if !strings.HasPrefix(got, "failed: ") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want failed with %q", tt.version, got, tt.want)
		}
		if (hits.Load() > 0) != tt.downloads {
			t.Errorf("%s: %d downloads", tt.version, hits.Load())
		}
		if after := state(); after != before {
			t.Fatalf("%s changed the device:\n%s\nwas\n%s", tt.version, after, before)
		}
	}
	// The refusals left the trusted metadata as it was: the current set
	// still verifies (a rollback attempt did not make it forget v3).
	swap(current)
	if got := update("3.0.0"); got != "succeeded: " {
		t.Fatalf("3.0.0 from the current set after the refusals: %s", got)
	}
}
