package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/release"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// sessionFetcher is the device's metadata fetcher of bosun-ota: ota.metadata
// through the signed session.
type sessionFetcher struct{ d *cloudtest.Device }

func (f sessionFetcher) Fetch(ctx context.Context, name string, maxLen int64) ([]byte, error) {
	var res fleet.OTAMetadataResult
	err := f.d.Peer.Call(ctx, rpcproto.MethodOTAMetadata, map[string]string{"file": name}, &res)
	var je *jsonrpc.Error
	if errors.As(err, &je) && je.Code == rpcproto.CodeNotFound {
		return nil, fmt.Errorf("%w: %s", release.ErrNotFound, name)
	}
	if err == nil && int64(len(res.Data)) > maxLen {
		return nil, fmt.Errorf("too large")
	}
	return res.Data, err
}

// releaseState is what a refused upload must leave as it was.
func releaseState(t *testing.T, s *cloudtest.Server, a fleet.Actor) string {
	t.Helper()
	in, err := s.Service().Release(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("root v%d targets v%d snapshot v%d timestamp v%d targets %d",
		in.RootVersion, in.TargetsVersion, in.SnapshotVersion, in.TimestampVersion, len(in.Targets))
}

// TestReleaseUploadAndDeviceFetch: an organisation's release repository
// takes a root from an admin and targets from an operator, refuses every
// upload it must (each leaving the repository as it was), and serves the
// metadata to its devices through the session, where a real TUF client
// (release.Verifier) verifies the signed target.
func TestReleaseUploadAndDeviceFetch(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	admin := s.Actor(t, "admin@rel", fleet.RoleAdmin, "")
	operator := s.Actor(t, "op@rel", fleet.RoleOperator, "")
	viewer := s.Actor(t, "viewer@rel", fleet.RoleViewer, "")

	in, err := s.Service().Release(ctx, viewer)
	if err != nil || in.RootVersion != 0 || !strings.Contains(in.SnapshotKey, "PUBLIC KEY") || !strings.Contains(in.TimestampKey, "PUBLIC KEY") {
		t.Fatalf("empty release: %+v, %v", in, err)
	}
	repo := cloudtest.InitRelease(t, s, admin)
	bundle := []byte("the bytes of hello 2.0.0")
	f := filepath.Join(t.TempDir(), "b")
	os.WriteFile(f, bundle, 0o600)
	targets, err := release.SignTarget(repo.Dir, "hello", "2.0.0", f, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// Refusals: each one leaves the repository as it was.
	other := t.TempDir() // another operator repository: other root and targets keys
	online, _ := s.Service().Release(ctx, admin)
	os.WriteFile(filepath.Join(other, "s.pub"), []byte(online.SnapshotKey), 0o600)
	os.WriteFile(filepath.Join(other, "t.pub"), []byte(online.TimestampKey), 0o600)
	sk, _ := release.PublicKeyFile(filepath.Join(other, "s.pub"))
	tk, _ := release.PublicKeyFile(filepath.Join(other, "t.pub"))
	if err := release.InitRepo(filepath.Join(other, "repo"), release.OnlineKeys{Snapshot: sk, Timestamp: tk}); err != nil {
		t.Fatal(err)
	}
	forged, err := release.SignTarget(filepath.Join(other, "repo"), "hello", "2.0.0", f, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherRoot, _ := os.ReadFile(filepath.Join(other, "repo", "1.root.json"))
	before := releaseState(t, s, admin)
	for _, tt := range []struct {
		name string
		a    fleet.Actor
		up   fleet.ReleaseUpload
		kind error
		want string
	}{
		{"viewer", viewer, fleet.ReleaseUpload{Targets: targets}, fleet.ErrForbidden, "may not upload"},
		{"operator with a root", operator, fleet.ReleaseUpload{Roots: [][]byte{otherRoot}}, fleet.ErrForbidden, "only an admin"},
		{"nothing", admin, fleet.ReleaseUpload{}, fleet.ErrInvalid, "nothing to upload"},
		{"targets of other keys", operator, fleet.ReleaseUpload{Targets: forged}, fleet.ErrInvalid, "not signed by the trusted keys"},
		{"a foreign root 1 again", admin, fleet.ReleaseUpload{Roots: [][]byte{otherRoot}}, fleet.ErrInvalid, "root.json 1 of 1 refused"},
		{"not JSON", operator, fleet.ReleaseUpload{Targets: []byte("{")}, fleet.ErrInvalid, "targets.json refused"},
		{"too large", operator, fleet.ReleaseUpload{Targets: make([]byte, fleet.MaxSessionMetadata+1)}, fleet.ErrInvalid, "the limit is 524288"},
	} {
		_, err := s.Service().UploadRelease(ctx, tt.a, tt.up)
		if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v (public %q), want %v with %q", tt.name, err, fleet.PublicText(err), tt.kind, tt.want)
		}
		if after := releaseState(t, s, admin); after != before {
			t.Fatalf("%s changed the repository: %s, was %s", tt.name, after, before)
		}
	}

	// The operator's signed targets are accepted; the same version again is a rollback.
	got, err := s.Service().UploadRelease(ctx, operator, fleet.ReleaseUpload{Targets: targets})
	if err != nil || got.TargetsVersion != 2 || len(got.Targets) != 1 || got.Targets[0].Name != "hello" || got.TimestampVersion == 0 {
		t.Fatalf("targets upload: %+v, %v", got, err)
	}
	before = releaseState(t, s, admin)
	if _, err := s.Service().UploadRelease(ctx, operator, fleet.ReleaseUpload{Targets: targets}); !errors.Is(err, fleet.ErrInvalid) || !strings.Contains(fleet.PublicText(err), "older than the trusted version") {
		t.Fatalf("the same targets again: %v", err)
	}
	if after := releaseState(t, s, admin); after != before {
		t.Fatalf("a rollback changed the repository: %s, was %s", after, before)
	}

	// A device of the organisation verifies the target through its session.
	d := cloudtest.MustConnect(t, s, "dev-rel", cloudtest.DeviceOptions{})
	if err := s.Service().Accept(ctx, s.Super, "dev-rel"); err != nil {
		t.Fatal(err)
	}
	<-d.Accepted()
	v, err := release.NewVerifier(repo.Root(t), sessionFetcher{d}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ti, err := v.Target(ctx, "hello", "2.0.0")
	if err != nil || ti.Length != int64(len(bundle)) {
		t.Fatalf("Target: %+v, %v", ti, err)
	}
	if err := ti.Check(strings.NewReader(string(bundle))); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Target(ctx, "hello", "3.0.0"); !errors.Is(err, release.ErrUnknownTarget) {
		t.Fatalf("unsigned version: %v", err)
	}
	for file, code := range map[string]int{"2.root.json": rpcproto.CodeNotFound, "../root.json": jsonrpc.CodeInvalidParams,
		"0.root.json": jsonrpc.CodeInvalidParams, "keys/snapshot.key": jsonrpc.CodeInvalidParams} {
		var je *jsonrpc.Error
		err := d.Peer.Call(ctx, rpcproto.MethodOTAMetadata, map[string]string{"file": file}, nil)
		if !errors.As(err, &je) || je.Code != code {
			t.Errorf("ota.metadata %s: %v, want code %d", file, err, code)
		}
	}

	// SignedTarget: the uploaded bytes must be the signed ones.
	art, err := s.Service().UploadArtifact(ctx, operator, "hello", "2.0.0", int64(len(bundle)), strings.NewReader(string(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Service().SignedTarget(ctx, art); err != nil {
		t.Fatalf("SignedTarget of the signed bytes: %v", err)
	}
	wrong, err := s.Service().UploadArtifact(ctx, operator, "hello", "3.0.0", 5, strings.NewReader("other"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Service().SignedTarget(ctx, wrong); !errors.Is(err, fleet.ErrConflict) || !strings.Contains(fleet.PublicText(err), "not in this organisation's signed targets.json") {
		t.Fatalf("SignedTarget of an unsigned version: %v", err)
	}
	repo.Sign(t, "hello", "3.0.0", []byte("not the uploaded bytes"))
	if _, err := s.Service().SignedTarget(ctx, wrong); !errors.Is(err, fleet.ErrConflict) || !strings.Contains(fleet.PublicText(err), "signed with other bytes") {
		t.Fatalf("SignedTarget of other bytes: %v", err)
	}
}

// TestReleaseRefreshKeepsDevicesFresh: the cloud re-signs the timestamp
// (and snapshot) before it expires, so a device verifies long after the
// first timestamp's lifetime; without the refresh it would call the
// repository frozen.
func TestReleaseRefreshKeepsDevicesFresh(t *testing.T) {
	s := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
		c.ReleaseOptions = &release.OnlineOptions{TimestampExpiry: 2 * time.Second, SnapshotExpiry: 4 * time.Second}
		c.ReleaseRefresh = 100 * time.Millisecond
	}))
	ctx := ctxT(t)
	admin := s.Actor(t, "admin@fresh", fleet.RoleAdmin, "")
	repo := cloudtest.InitRelease(t, s, admin)
	repo.Sign(t, "hello", "2.0.0", []byte("hello 2.0.0"))
	first, err := s.Service().Release(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	d := cloudtest.MustConnect(t, s, "dev-fresh", cloudtest.DeviceOptions{})
	if err := s.Service().Accept(ctx, s.Super, "dev-fresh"); err != nil {
		t.Fatal(err)
	}
	<-d.Accepted()
	v, err := release.NewVerifier(repo.Root(t), sessionFetcher{d}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Past the first timestamp's and snapshot's expiry.
	for time.Now().Before(first.SnapshotExpires.Add(500 * time.Millisecond)) {
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := v.Target(ctx, "hello", "2.0.0"); err != nil {
		t.Fatalf("after the first metadata expired: %v", err)
	}
	now, err := s.Service().Release(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if now.TimestampVersion <= first.TimestampVersion || now.SnapshotVersion <= first.SnapshotVersion || !now.TimestampExpires.After(time.Now()) {
		t.Fatalf("not refreshed: timestamp v%d→v%d (expires %s), snapshot v%d→v%d", first.TimestampVersion, now.TimestampVersion,
			now.TimestampExpires, first.SnapshotVersion, now.SnapshotVersion)
	}
	if now.TargetsVersion != first.TargetsVersion {
		t.Fatalf("the refresh changed targets: v%d→v%d", first.TargetsVersion, now.TargetsVersion)
	}
}

// TestDeploymentOfUnsignedRefused: a deployment of an artifact its
// organisation's release does not sign (or signs for other bytes) is
// refused before anything is stored: every device would refuse it.
func TestDeploymentOfUnsignedRefused(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	d := cloudtest.MustConnect(t, s, "dev-unsigned", cloudtest.DeviceOptions{})
	if err := s.Service().Accept(ctx, s.Super, "dev-unsigned"); err != nil {
		t.Fatal(err)
	}
	<-d.Accepted()
	if _, err := s.Service().UploadArtifact(ctx, s.Super, "hello", "2.0.0", 5, strings.NewReader("bytes")); err != nil {
		t.Fatal(err)
	}
	spec := fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"dev-unsigned"}}
	count := func() int {
		l, err := s.Service().ListDeployments(ctx, s.Super, fleet.DeploymentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	for _, step := range []struct {
		prepare func()
		want    string
	}{
		{func() {}, "no release metadata yet"},
		{func() { cloudtest.InitRelease(t, s, s.Super) }, "not in this organisation's signed targets.json"},
	} {
		step.prepare()
		_, err := s.Service().CreateDeployment(ctx, s.Super, spec)
		if !errors.Is(err, fleet.ErrConflict) || !strings.Contains(fleet.PublicText(err), step.want) {
			t.Fatalf("unsigned: %v, want %q", err, step.want)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d deployments stored after a refusal", n)
		}
	}
}
