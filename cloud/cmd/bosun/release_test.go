package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/pkg/release"
)

// TestRelease runs `bosun release init` and `bosun release sign` on real
// files and has a real release.Online accept what they made.
func TestRelease(t *testing.T) {
	tmp := t.TempDir()
	cloudKeys := filepath.Join(tmp, "cloud")
	online, err := release.OpenOnline(cloudKeys, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, ts := filepath.Join(cloudKeys, "snapshot.pub"), filepath.Join(cloudKeys, "timestamp.pub")
	dir := filepath.Join(tmp, "rel")
	bundle := filepath.Join(tmp, "hello.tar.gz")
	os.WriteFile(bundle, []byte("a bundle"), 0o644)

	r := runCLI(context.Background(), nil, "release", "init", dir, "--snapshot-key", snap, "--timestamp-key", ts)
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "made a release repository in "+dir) {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "keys", "*.key"))
	if len(keys) != 2 {
		t.Fatalf("keys: %v", keys)
	}
	for _, k := range keys {
		if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", k, fi, err)
		}
	}

	r = runCLI(context.Background(), nil, "release", "sign", dir, "hello", "1.2.3", bundle, "--json")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("sign: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var res struct {
		TargetsVersion int64  `json:"targets_version"`
		Path           string `json:"path"`
		Length         int64  `json:"length"`
		SHA256         string `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if res.TargetsVersion != 2 || res.Path != "hello/1.2.3/bundle.tar.gz" || res.Length != 8 || len(res.SHA256) != 64 {
		t.Fatalf("sign --json = %+v", res)
	}
	root, _ := os.ReadFile(filepath.Join(dir, "1.root.json"))
	targets, _ := os.ReadFile(filepath.Join(dir, "targets.json"))
	if _, err := online.Accept(release.Repo{}, root, targets); err != nil {
		t.Fatalf("the cloud refuses what the CLI signed: %v", err)
	}

	r = runCLI(context.Background(), nil, "release", "sign", dir, "hello", "1.2.4", bundle, "--expires", "1h")
	if r.code != 0 || !strings.Contains(r.stdout, "signed hello 1.2.4 (8 bytes, sha256 ") || !strings.Contains(r.stdout, "is now version 3, valid until ") {
		t.Fatalf("sign: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(context.Background(), nil, "release", "remove", dir, "hello", "1.2.4")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "removed hello 1.2.4\n") || !strings.Contains(r.stdout, "targets.json is now version 4, valid until ") {
		t.Fatalf("remove: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if list, err := release.ListTargets(mustRead(t, filepath.Join(dir, "targets.json"))); err != nil || len(list) != 1 || list[0].Version != "1.2.3" {
		t.Fatalf("targets after remove: %+v, %v", list, err)
	}

	// Rotation: new root and targets keys, then new cloud keys; the cloud
	// with those keys accepts the chain.
	r = runCLI(context.Background(), nil, "release", "rotate", dir, "--new-root-key", "--new-targets-key")
	if r.code != 0 || !strings.Contains(r.stdout, "wrote "+filepath.Join(dir, "2.root.json")+" (root version 2") || !strings.Contains(r.stdout, "re-signed") {
		t.Fatalf("rotate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	cloud2Keys := filepath.Join(tmp, "cloud2")
	cloud2, err := release.OpenOnline(cloud2Keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = runCLI(context.Background(), nil, "release", "rotate", dir, "--snapshot-key", filepath.Join(cloud2Keys, "snapshot.pub"),
		"--timestamp-key", filepath.Join(cloud2Keys, "timestamp.pub"), "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"version": 3`) {
		t.Fatalf("rotate --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	repo, err := online.Accept(release.Repo{}, root, targets)
	if err != nil {
		t.Fatal(err)
	}
	root2, _ := os.ReadFile(filepath.Join(dir, "2.root.json"))
	targets2, _ := os.ReadFile(filepath.Join(dir, "targets.json"))
	if repo, err = online.Accept(repo, root2, targets2); err != nil {
		t.Fatalf("Accept(2.root.json): %v", err)
	}
	root3, _ := os.ReadFile(filepath.Join(dir, "3.root.json"))
	if _, err := cloud2.Accept(repo, root3, nil); err != nil {
		t.Fatalf("new cloud Accept(3.root.json): %v", err)
	}

	// Refusals: the right exit code and message, and no file changed.
	before := snapshotDir(t, dir)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"init again", []string{"release", "init", dir, "--snapshot-key", snap, "--timestamp-key", ts}, exitFailure, "already initialised"},
		{"init with one key", []string{"release", "init", filepath.Join(tmp, "other"), "--snapshot-key", snap}, exitUsage, "together"},
		{"init without keys or a cloud", []string{"release", "init", filepath.Join(tmp, "other")}, exitFailure, "no cloud URL"},
		{"init with a missing key file", []string{"release", "init", filepath.Join(tmp, "other"), "--snapshot-key", filepath.Join(tmp, "none"), "--timestamp-key", ts}, exitFailure, "snapshot key"},
		{"init with a private key", []string{"release", "init", filepath.Join(tmp, "other"), "--snapshot-key", filepath.Join(cloudKeys, "snapshot.key"), "--timestamp-key", ts}, exitFailure, "no PEM block"},
		{"sign a v-version", []string{"release", "sign", dir, "hello", "v1.0.0", bundle}, exitFailure, "not a semantic version"},
		{"sign a bad name", []string{"release", "sign", dir, "Hello", "1.0.0", bundle}, exitFailure, "must match"},
		{"sign a missing bundle", []string{"release", "sign", dir, "hello", "1.0.0", filepath.Join(tmp, "none")}, exitFailure, "no such file"},
		{"sign with too few arguments", []string{"release", "sign", dir, "hello", "1.0.0"}, exitUsage, "want sign DIR NAME VERSION BUNDLE"},
		{"sign with a zero expiry", []string{"release", "sign", dir, "hello", "1.0.0", bundle, "--expires", "0s"}, exitUsage, "--expires must be positive"},
		{"no subcommand", []string{"release"}, exitUsage, "want init, publish, status, sign, remove or rotate"},
		{"remove an unsigned version", []string{"release", "remove", dir, "hello", "1.2.4"}, exitFailure, "no such target"},
		{"remove with too many arguments", []string{"release", "remove", dir, "hello", "1.2.3", "x"}, exitUsage, "want remove DIR NAME VERSION"},
		{"unknown subcommand", []string{"release", "resign", dir}, exitUsage, `unknown release command "resign"`},
		{"rotate with one cloud key", []string{"release", "rotate", dir, "--snapshot-key", snap}, exitUsage, "together"},
		{"rotate a directory without a root", []string{"release", "rotate", filepath.Join(tmp, "other")}, exitFailure, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(context.Background(), nil, tc.args...)
			if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantErr) || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", r.code, r.stdout, r.stderr, tc.wantCode, tc.wantErr)
			}
			if after := snapshotDir(t, dir); !bytes.Equal(before, after) {
				t.Fatal("a refused command changed the release directory")
			}
			if _, err := os.Stat(filepath.Join(tmp, "other")); !os.IsNotExist(err) {
				t.Fatalf("a refused init made a directory: %v", err)
			}
		})
	}
}

// snapshotDir is the names, modes and contents of the files under dir.
func snapshotDir(t *testing.T, dir string) []byte {
	t.Helper()
	var b bytes.Buffer
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String() + "\n")
		if !fi.IsDir() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
