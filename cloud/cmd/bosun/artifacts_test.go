package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/server"
)

// TestArtifactsCLI uploads, lists, shows and deletes through the CLI
// against a real replica, and sees each refusal change nothing.
func TestArtifactsCLI(t *testing.T) {
	srv := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) { c.MaxArtifactSize = 1 << 16 }))
	s := newCLISession(t, srv)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "hello.tar.gz")
	data := bytes.Repeat([]byte("bundle"), 1000)
	if err := os.WriteFile(bundle, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])

	s.expect(s.run("artifacts"), 0, `^no artifacts\n$`, `^$`)
	s.expect(s.run("artifacts", "upload", "hello", "1.0.0", bundle), 0, `^uploaded hello 1.0.0 as artifact 1: 6000 bytes, sha256 `+sha+`\nnot signed: devices refuse it until it is`, `^$`)
	s.expect(s.run("artifacts", "upload", "hello", "1.0.0", bundle), 1, `^$`, `artifact hello version 1.0.0 exists already`)
	s.expect(s.run("artifacts", "upload", "hello", "v2", bundle), 1, `^$`, `semantic version`)
	s.expect(s.run("artifacts", "upload", "hello", "2.0.0", filepath.Join(dir, "missing")), 1, `^$`, `no such file`)
	s.expect(s.run("artifacts", "upload", "hello", "2.0.0"), 2, `^$`, `want list`)
	big := filepath.Join(dir, "big.tar.gz")
	os.WriteFile(big, make([]byte, 1<<16+1), 0o600)
	s.expect(s.run("artifacts", "upload", "hello", "3.0.0", big), 1, `^$`, `larger than this cloud's limit of 65536 bytes`)
	s.expect(s.run("artifacts", "upload", "hello", "1.1.0-rc.1", bundle), 0, `as artifact \d+`, `^$`)
	r := s.run("artifacts", "list", "hello")
	s.expect(r, 0, `(?s)^ID +NAME +VERSION.*\n\d+ +hello +1\.1\.0-rc\.1 .*\n1 +hello +1\.0\.0 +6000 +`+sha[:12], `^$`)
	s.expect(s.run("artifacts", "show", "1"), 0, `(?m)^sha256 +`+sha+`$`, `^$`)
	s.expect(s.run("artifacts", "show", "99"), 1, `^$`, `artifact 99 not found`)
	s.expect(s.run("artifacts", "delete", "1"), 0, `^deleted artifact 1\n$`, `^$`)
	s.expect(s.run("artifacts", "show", "1"), 1, `^$`, `not found`)
	s.expect(s.run("artifacts", "--json", "list"), 0, `"version": "1.1.0-rc.1"`, `^$`)
}

// TestReleaseCLIWithCloud: bosun release init asks the cloud for its online
// keys, publish uploads the root and targets, artifacts upload --release
// signs locally and publishes, status shows it; each refusal changes
// nothing on the cloud.
func TestReleaseCLIWithCloud(t *testing.T) {
	srv := cloudtest.NewServer(t)
	s := newCLISession(t, srv)
	dir := filepath.Join(t.TempDir(), "release")
	bundle := filepath.Join(t.TempDir(), "hello.tar.gz")
	os.WriteFile(bundle, []byte("hello bundle 2.0.0"), 0o600)

	s.expect(s.run("release", "status"), 0, `^no release metadata yet`, `^$`)
	s.expect(s.run("release", "publish", dir), 1, `^$`, `not a release repository`)
	s.expect(s.run("artifacts", "upload", "hello", "2.0.0", bundle, "--release", dir), 1, `^$`, `not a release repository`)
	s.expect(s.run("artifacts"), 0, `^no artifacts\n$`, `^$`)
	s.expect(s.run("release", "init", dir), 0, `made a release repository in `+regexp.QuoteMeta(dir)+`(?s).*next: bosun release publish`, `^$`)
	s.expect(s.run("release", "publish", dir), 0, `^published 1 root.json and targets.json: the cloud now has root version 1, targets version 1 \(0 targets\)\n$`, `^$`)
	s.expect(s.run("release", "publish", dir), 0, `^the cloud is up to date: root version 1, targets version 1\n$`, `^$`)
	s.expect(s.run("artifacts", "upload", "hello", "2.0.0", bundle, "--release", dir), 0,
		`^uploaded hello 2.0.0 as artifact 1: 18 bytes, sha256 [0-9a-f]{64}\nsigned in .* and published: targets version 2\n$`, `^$`)
	s.expect(s.run("release", "status"), 0, `(?s)root +version 1 +valid until .*targets +version 2 .*signed targets:\nNAME +VERSION +BYTES +SHA256\nhello +2\.0\.0 +18 `, `^$`)
	s.expect(s.run("release", "status", "--json"), 0, `"targets_version": 2`, `^$`)
}
