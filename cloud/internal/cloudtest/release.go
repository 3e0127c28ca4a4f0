package cloudtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/release"
)

// ReleaseRepo is an operator's release repository (pkg/release) made for a
// test server's organisation: its keys and metadata in Dir.
type ReleaseRepo struct {
	Dir string
	s   *Server
	a   fleet.Actor // an admin of the organisation
}

// InitRelease makes a release repository naming the server's online keys
// (as `bosun release init` does) and uploads its root and (empty)
// targets as admin, an admin of the organisation (as `bosun release
// publish` does).
func InitRelease(tb testing.TB, s *Server, admin fleet.Actor) *ReleaseRepo {
	tb.Helper()
	ctx := context.Background()
	in, err := s.Service().Release(ctx, admin)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	keys := filepath.Join(dir, "cloud")
	os.Mkdir(keys, 0o700)
	snap, ts := filepath.Join(keys, "snapshot.pub"), filepath.Join(keys, "timestamp.pub")
	os.WriteFile(snap, []byte(in.SnapshotKey), 0o600)
	os.WriteFile(ts, []byte(in.TimestampKey), 0o600)
	sk, err := release.PublicKeyFile(snap)
	if err != nil {
		tb.Fatal(err)
	}
	tk, err := release.PublicKeyFile(ts)
	if err != nil {
		tb.Fatal(err)
	}
	r := &ReleaseRepo{Dir: filepath.Join(dir, "repo"), s: s, a: admin}
	if err := release.InitRepo(r.Dir, release.OnlineKeys{Snapshot: sk, Timestamp: tk}); err != nil {
		tb.Fatal(err)
	}
	targets, err := os.ReadFile(filepath.Join(r.Dir, "targets.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Service().UploadRelease(ctx, admin, fleet.ReleaseUpload{Roots: [][]byte{r.Root(tb)}, Targets: targets}); err != nil {
		tb.Fatal(err)
	}
	return r
}

// Root returns the repository's 1.root.json (what devices pin).
func (r *ReleaseRepo) Root(tb testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join(r.Dir, "1.root.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Sign signs bundle as name at version into targets.json and uploads
// it, as `bosun artifacts upload --release` does after the bytes.
func (r *ReleaseRepo) Sign(tb testing.TB, name, version string, bundle []byte) {
	tb.Helper()
	f := filepath.Join(tb.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(f, bundle, 0o600); err != nil {
		tb.Fatal(err)
	}
	targets, err := release.SignTarget(r.Dir, name, version, f, 24*time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := r.s.Service().UploadRelease(context.Background(), r.a, fleet.ReleaseUpload{Targets: targets}); err != nil {
		tb.Fatal(err)
	}
}

// UploadSigned uploads bundle as artifact name version and signs it.
func (r *ReleaseRepo) UploadSigned(tb testing.TB, name, version string, bundle []byte) fleet.Artifact {
	tb.Helper()
	art, err := r.s.Service().UploadArtifact(context.Background(), r.a, name, version, int64(len(bundle)), bytes.NewReader(bundle))
	if err != nil {
		tb.Fatal(err)
	}
	r.Sign(tb, name, version, bundle)
	return art
}
