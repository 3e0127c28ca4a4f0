package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// clock is a settable clock shared by the operator, the cloud and devices.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// repoServer serves metadata files over HTTP on loopback, as the cloud will.
type repoServer struct {
	mu    sync.Mutex
	files map[string][]byte
	srv   *httptest.Server
}

func newRepoServer(tb testing.TB) *repoServer {
	tb.Helper()
	s := &repoServer{files: map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/meta/")
		s.mu.Lock()
		b, ok := s.files[name]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	tb.Cleanup(s.srv.Close)
	return s
}

// publish serves repo's files, keeping every N.root.json served before.
func (s *repoServer) publish(tb testing.TB, repo Repo) {
	tb.Helper()
	files, err := repo.Files()
	if err != nil {
		tb.Fatal(err)
	}
	s.mu.Lock()
	maps.Copy(s.files, files)
	s.mu.Unlock()
}

// set serves b as name, whatever it is.
func (s *repoServer) set(name string, b []byte) {
	s.mu.Lock()
	s.files[name] = b
	s.mu.Unlock()
}

func (s *repoServer) fetcher() *HTTPFetcher { return &HTTPFetcher{BaseURL: s.srv.URL + "/meta"} }

// fixture is an operator's directory, a cloud's Online with its Repo, a
// server and one device.
type fixture struct {
	clk    *clock
	opDir  string
	online *Online
	repo   Repo
	srv    *repoServer
	state  string
	dev    *Verifier
	bundle string // a bundle signed as hello 1.0.0
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{clk: &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}, opDir: filepath.Join(t.TempDir(), "release")}
	var err error
	f.online, err = OpenOnline(filepath.Join(t.TempDir(), "online"), &OnlineOptions{Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := initRepo(f.opDir, f.online.Keys(), f.clk.now()); err != nil {
		t.Fatal(err)
	}
	f.bundle = writeBundle(t, "hello v1 bundle bytes")
	targets, err := signTarget(f.opDir, "hello", "1.0.0", f.bundle, 0, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	root := readFile(t, filepath.Join(f.opDir, "1.root.json"))
	if f.repo, err = f.online.Accept(Repo{}, root, targets); err != nil {
		t.Fatal(err)
	}
	f.srv = newRepoServer(t)
	f.srv.publish(t, f.repo)
	f.state = filepath.Join(t.TempDir(), "state")
	if f.dev, err = NewVerifier(root, f.srv.fetcher(), f.state, &VerifierOptions{Now: f.clk.now}); err != nil {
		t.Fatal(err)
	}
	return f
}

// accept uploads root and targets to the cloud and publishes the result.
func (f *fixture) accept(t testing.TB, root, targets []byte) {
	t.Helper()
	next, err := f.online.Accept(f.repo, root, targets)
	if err != nil {
		t.Fatal(err)
	}
	f.repo = next
	f.srv.publish(t, next)
}

func writeBundle(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirState is every file under dir with its bytes and mode.
func dirState(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel+"/"] = info.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = info.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// refuses asserts that the device refuses name/version with want (nil:
// any error) and that its trusted state is unchanged.
func (f *fixture) refuses(t *testing.T, name, version string, want error) {
	t.Helper()
	before := dirState(t, f.state)
	ti, err := f.dev.Target(context.Background(), name, version)
	if err == nil || (want != nil && !errors.Is(err, want)) {
		t.Fatalf("Target(%s, %s) = %+v, %v; want %v", name, version, ti, err, want)
	}
	if after := dirState(t, f.state); !maps.Equal(before, after) {
		t.Fatalf("trusted state changed on refusal (%v):\nbefore %v\nafter  %v", err, keysOf(before), keysOf(after))
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s(%d)", k, len(v)))
	}
	return out
}

// trustedVersion is the version of a role in the device's state.
func trustedVersion(t *testing.T, state, role string) int64 {
	t.Helper()
	b := readFile(t, filepath.Join(state, role+".json"))
	var err error
	var v int64
	switch role {
	case "root":
		var m *metadata.Metadata[metadata.RootType]
		m, err = parseRoot(b)
		if err == nil {
			v = m.Signed.Version
		}
	case "targets":
		var m *metadata.Metadata[metadata.TargetsType]
		m, err = parseTargets(b)
		if err == nil {
			v = m.Signed.Version
		}
	case "snapshot":
		var m *metadata.Metadata[metadata.SnapshotType]
		m, err = parseSnapshot(b)
		if err == nil {
			v = m.Signed.Version
		}
	case "timestamp":
		var m *metadata.Metadata[metadata.TimestampType]
		m, err = parseTimestamp(b)
		if err == nil {
			v = m.Signed.Version
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHappyPath(t *testing.T) {
	f := newFixture(t)
	ti, err := f.dev.Target(context.Background(), "hello", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	content := "hello v1 bundle bytes"
	if ti.Path != "hello/1.0.0/bundle.tar.gz" || ti.Name != "hello" || ti.Version != "1.0.0" || ti.Length != int64(len(content)) {
		t.Fatalf("TargetInfo = %+v", ti)
	}
	if len(ti.Hashes["sha256"]) != 32 || len(ti.Hashes["sha512"]) != 64 {
		t.Fatalf("hashes = %v", ti.Hashes)
	}
	if err := ti.CheckFile(f.bundle); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		if fi, err := os.Stat(filepath.Join(f.state, role+".json")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("state %s.json: %v %v", role, fi, err)
		}
	}
	// A second version, signed and uploaded later, is seen; the first stays.
	b2 := writeBundle(t, "hello v2, a longer bundle")
	targets, err := signTarget(f.opDir, "hello", "2.0.0-rc.1", b2, 0, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	f.accept(t, nil, targets)
	ti2, err := f.dev.Target(context.Background(), "hello", "2.0.0-rc.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ti2.CheckFile(b2); err != nil {
		t.Fatal(err)
	}
	if got := trustedVersion(t, f.state, "targets"); got != 3 {
		t.Fatalf("trusted targets v%d, want v3", got)
	}
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	// An unsigned version is unknown, and changes nothing.
	f.refuses(t, "hello", "3.0.0", ErrUnknownTarget)
	f.refuses(t, "Hello", "1.0.0", ErrBadName)
	f.refuses(t, "hello", "v1.0.0", ErrBadName)

	list, err := ListTargets(f.repo.Targets)
	if err != nil || len(list) != 2 || list[0].Version != "1.0.0" || list[1].Version != "2.0.0-rc.1" {
		t.Fatalf("ListTargets = %+v, %v", list, err)
	}
}

// forgedTargets is what a breached cloud can make: a targets.json listing
// its own bundle, signed with the keys it has (the online ones).
func forgedTargets(t *testing.T, f *fixture, version int64, bundle string) []byte {
	t.Helper()
	tf, err := targetFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	raw := json.RawMessage(`{"bosun":{"name":"hello","version":"6.6.6"}}`)
	tf.Custom = &raw
	m := metadata.Targets(f.clk.now().Add(24 * time.Hour))
	m.Signed.Version = version
	m.Signed.Targets["hello/6.6.6/bundle.tar.gz"] = tf
	b, err := sign(m, f.online.snapshot, f.online.timestamp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBreachedCloudCannotForge(t *testing.T) {
	f := newFixture(t)
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	evil := writeBundle(t, "malware")
	forged := forgedTargets(t, f, 10, evil)

	t.Run("online refuses targets signed by online keys", func(t *testing.T) {
		next, err := f.online.Accept(f.repo, nil, forged)
		if !errors.Is(err, ErrUntrusted) || next.Targets != nil {
			t.Fatalf("Accept = %v, %v; want ErrUntrusted and no repo", next.Targets != nil, err)
		}
	})
	t.Run("device refuses targets signed by online keys", func(t *testing.T) {
		// The cloud signs snapshot and timestamp for the forgery itself.
		snap, err := f.online.makeSnapshot(10, 50, f.clk.now())
		if err != nil {
			t.Fatal(err)
		}
		ts, err := f.online.makeTimestamp(snap, 50, f.clk.now())
		if err != nil {
			t.Fatal(err)
		}
		f.srv.set("targets.json", forged)
		f.srv.set("snapshot.json", snap)
		f.srv.set("timestamp.json", ts)
		f.refuses(t, "hello", "6.6.6", ErrUntrusted)
		f.refuses(t, "hello", "1.0.0", ErrUntrusted)
	})
	t.Run("a root re-signed with online keys only", func(t *testing.T) {
		// The cloud makes itself the targets role in a root v2.
		root, err := parseRoot(f.repo.Root)
		if err != nil {
			t.Fatal(err)
		}
		root.Signed.Version = 2
		for _, role := range []string{metadata.ROOT, metadata.TARGETS} {
			for _, id := range append([]string(nil), root.Signed.Roles[role].KeyIDs...) {
				if err := root.Signed.RevokeKey(id, role); err != nil {
					t.Fatal(err)
				}
			}
			if err := root.Signed.AddKey(f.online.snapshot.key, role); err != nil {
				t.Fatal(err)
			}
		}
		rootJSON, err := sign(root, f.online.snapshot, f.online.timestamp)
		if err != nil {
			t.Fatal(err)
		}
		forged2 := forgedTargets(t, f, 11, evil) // signed by the snapshot key, root v2's "targets"
		next, err := f.online.Accept(f.repo, rootJSON, forged2)
		if !errors.Is(err, ErrUntrusted) || next.Root != nil {
			t.Fatalf("Accept(root v2) = %v; want ErrUntrusted", err)
		}
		f.srv.set("2.root.json", rootJSON)
		f.srv.set("targets.json", forged2)
		snap, _ := f.online.makeSnapshot(11, 51, f.clk.now())
		ts, _ := f.online.makeTimestamp(snap, 51, f.clk.now())
		f.srv.set("snapshot.json", snap)
		f.srv.set("timestamp.json", ts)
		f.refuses(t, "hello", "6.6.6", ErrUntrusted)
		if got := trustedVersion(t, f.state, "root"); got != 1 {
			t.Fatalf("trusted root v%d", got)
		}
	})
}
