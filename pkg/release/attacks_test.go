package release

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// newerRepo moves f one release on (hello 2.0.0) and has the device trust
// it; it returns the repository as it was before.
func newerRepo(t *testing.T, f *fixture) (old Repo) {
	t.Helper()
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	old = f.repo
	targets, err := signTarget(f.opDir, "hello", "2.0.0", writeBundle(t, "v2"), 0, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	f.accept(t, nil, targets)
	if _, err := f.dev.Target(context.Background(), "hello", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	return old
}

func TestRollbackRefused(t *testing.T) {
	t.Run("older timestamp", func(t *testing.T) {
		f := newFixture(t)
		old := newerRepo(t, f)
		f.srv.publish(t, old)
		f.refuses(t, "hello", "1.0.0", ErrRollback)
	})
	t.Run("older snapshot under a new timestamp", func(t *testing.T) {
		f := newFixture(t)
		old := newerRepo(t, f)
		// A breached cloud signs a fresh timestamp for the old snapshot.
		ts, err := f.online.makeTimestamp(old.Snapshot, 20, f.clk.now())
		if err != nil {
			t.Fatal(err)
		}
		f.srv.publish(t, old)
		f.srv.set("timestamp.json", ts)
		f.refuses(t, "hello", "1.0.0", ErrRollback)
	})
	t.Run("older targets under a new snapshot", func(t *testing.T) {
		f := newFixture(t)
		old := newerRepo(t, f)
		snap, err := f.online.makeSnapshot(2, 20, f.clk.now()) // targets v2 is the old one
		if err != nil {
			t.Fatal(err)
		}
		ts, err := f.online.makeTimestamp(snap, 20, f.clk.now())
		if err != nil {
			t.Fatal(err)
		}
		f.srv.set("targets.json", old.Targets)
		f.srv.set("snapshot.json", snap)
		f.srv.set("timestamp.json", ts)
		f.refuses(t, "hello", "1.0.0", ErrRollback)
	})
	t.Run("online refuses older or equal targets and older roots", func(t *testing.T) {
		f := newFixture(t)
		old := newerRepo(t, f)
		for _, up := range []struct {
			name          string
			root, targets []byte
		}{
			{"older targets", nil, old.Targets},
			{"same targets", nil, f.repo.Targets},
			{"root v1 again", old.Root, nil},
		} {
			next, err := f.online.Accept(f.repo, up.root, up.targets)
			if !errors.Is(err, ErrRollback) || next.Timestamp != nil {
				t.Errorf("%s: Accept = %v; want ErrRollback", up.name, err)
			}
		}
	})
}

func TestFreezeRefused(t *testing.T) {
	f := newFixture(t)
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	// The cloud stops refreshing (or an attacker replays what it has):
	// past the timestamp's day, the device refuses.
	f.clk.add(DefaultTimestampExpiry + time.Minute)
	f.refuses(t, "hello", "1.0.0", ErrExpired)

	// The cloud's periodic Refresh makes it fresh again.
	next, changed, err := f.online.Refresh(f.repo)
	if err != nil || !changed {
		t.Fatalf("Refresh = %v, %v", changed, err)
	}
	f.repo = next
	f.srv.publish(t, next)
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	// Just after a refresh there is nothing to do.
	if again, changed, err := f.online.Refresh(f.repo); err != nil || changed || !bytes.Equal(again.Timestamp, f.repo.Timestamp) {
		t.Fatalf("second Refresh = %v, %v", changed, err)
	}
	// Past the snapshot's week, Refresh re-signs the snapshot too, and the
	// device follows; without it the device refuses.
	f.clk.add(DefaultSnapshotExpiry)
	f.refuses(t, "hello", "1.0.0", ErrExpired)
	next, changed, err = f.online.Refresh(f.repo)
	if err != nil || !changed || bytes.Equal(next.Snapshot, f.repo.Snapshot) {
		t.Fatalf("Refresh after a week = %v, %v", changed, err)
	}
	f.repo = next
	f.srv.publish(t, next)
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	// Expired targets: the operator must re-sign; the cloud cannot.
	f.clk.add(DefaultTargetsExpiry)
	next, _, err = f.online.Refresh(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.publish(t, next)
	f.refuses(t, "hello", "1.0.0", ErrExpired)
}

func TestTamperedMetadataRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		tamper func([]byte) []byte
		want   error
	}{
		{"snapshot one byte longer", "snapshot.json", func(b []byte) []byte { return append(b, ' ') }, ErrTampered},
		{"snapshot one byte changed", "snapshot.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"version": 1`), []byte(`"version": 2`), 1)
		}, ErrTampered},
		{"targets length changed", "targets.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"length": 21`), []byte(`"length": 22`), 1)
		}, ErrUntrusted},
		{"timestamp expiry pushed", "timestamp.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"expires": "2026`), []byte(`"expires": "2036`), 1)
		}, ErrUntrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			files, _ := f.repo.Files()
			b := tc.tamper(bytes.Clone(files[tc.file]))
			if bytes.Equal(b, files[tc.file]) {
				t.Fatalf("tamper changed nothing in %s", files[tc.file])
			}
			f.srv.set(tc.file, b)
			f.refuses(t, "hello", "1.0.0", tc.want)
			if _, err := os.Stat(filepath.Join(f.state, "timestamp.json")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused first refresh left a timestamp: %v", err)
			}
		})
	}
}

func TestTargetInfoCheck(t *testing.T) {
	content := []byte("the bundle")
	s256, s512 := sha256.Sum256(content), sha512.Sum512(content)
	good := TargetInfo{Path: "a/1.0.0/bundle.tar.gz", Length: int64(len(content)), Hashes: map[string][]byte{"sha256": s256[:], "sha512": s512[:]}}
	only256 := good
	only256.Hashes = map[string][]byte{"sha256": s256[:]}
	bad512 := good
	bad512.Hashes = map[string][]byte{"sha256": s256[:], "sha512": make([]byte, 64)}
	none := good
	none.Hashes = map[string][]byte{"sha512": s512[:]}
	flipped := bytes.Clone(content)
	flipped[3] ^= 1
	emptySum := sha256.Sum256(nil)
	empty := TargetInfo{Path: "e/1.0.0/bundle.tar.gz", Hashes: map[string][]byte{"sha256": emptySum[:]}}
	for _, tc := range []struct {
		name string
		ti   TargetInfo
		data []byte
		ok   bool
	}{
		{"exact", good, content, true},
		{"exact, sha256 only", only256, content, true},
		{"empty bundle of length 0", empty, nil, true},
		{"one byte short", good, content[:len(content)-1], false},
		{"one byte more", good, append(bytes.Clone(content), 'x'), false},
		{"one bit flipped", good, flipped, false},
		{"sha512 differs", bad512, content, false},
		{"no sha256 to check", none, content, false},
		{"empty bundle given bytes", empty, []byte("x"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ti.Check(bytes.NewReader(tc.data))
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrTampered)) {
				t.Fatalf("Check = %v, want ok=%v", err, tc.ok)
			}
			p := filepath.Join(t.TempDir(), "b")
			os.WriteFile(p, tc.data, 0o644)
			if err2 := tc.ti.CheckFile(p); (err2 == nil) != (err == nil) {
				t.Fatalf("CheckFile = %v, Check = %v", err2, err)
			}
		})
	}
	if err := good.CheckFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CheckFile(missing) = %v", err)
	}
}

func TestRootRotation(t *testing.T) {
	f := newFixture(t)
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	root1, err := parseRoot(readFile(t, filepath.Join(f.opDir, "1.root.json")))
	if err != nil {
		t.Fatal(err)
	}
	oldTargetsKey, err := roleSigners(f.opDir, root1, metadata.TARGETS)
	if err != nil {
		t.Fatal(err)
	}
	// New root and targets keys: 2.root.json signed by the old and new root keys.
	root2, err := rotateRoot(f.opDir, Rotation{NewRootKey: true, NewTargetsKey: true}, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	targets, err := signTarget(f.opDir, "hello", "1.1.0", writeBundle(t, "after rotation"), 0, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	f.accept(t, root2, targets)
	// The device, pinned to 1.root.json, walks to 2.root.json.
	if _, err := f.dev.Target(context.Background(), "hello", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	if got := trustedVersion(t, f.state, "root"); got != 2 {
		t.Fatalf("trusted root v%d, want v2", got)
	}
	// A fresh device pinned to 1.root.json gets there too.
	fresh, err := NewVerifier(readFile(t, filepath.Join(f.opDir, "1.root.json")), f.srv.fetcher(), filepath.Join(t.TempDir(), "s"), &VerifierOptions{Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Target(context.Background(), "hello", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	entries, _ := filepath.Glob(filepath.Join(f.opDir, "keys", "*.key"))
	if len(entries) != 4 {
		t.Fatalf("keys after rotation: %v", entries)
	}
	for _, e := range entries {
		if fi, _ := os.Stat(e); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", e, fi.Mode())
		}
	}

	// The retired targets key no longer signs anything.
	tm, err := parseTargets(f.repo.Targets)
	if err != nil {
		t.Fatal(err)
	}
	tm.Signed.Version += 5
	stale, err := sign(tm, oldTargetsKey...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.online.Accept(f.repo, nil, stale); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("Accept(targets by the retired key) = %v", err)
	}
	snap, _ := f.online.makeSnapshot(tm.Signed.Version, 30, f.clk.now())
	ts, _ := f.online.makeTimestamp(snap, 30, f.clk.now())
	f.srv.set("targets.json", stale)
	f.srv.set("snapshot.json", snap)
	f.srv.set("timestamp.json", ts)
	f.refuses(t, "hello", "1.1.0", ErrUntrusted)
	f.srv.publish(t, f.repo)

	// New online keys (a new cloud): root v3 names them; the old cloud
	// can no longer sign for this repository and says so.
	cloud2, err := OpenOnline(filepath.Join(t.TempDir(), "online2"), &OnlineOptions{Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	k2 := cloud2.Keys()
	root3, err := rotateRoot(f.opDir, Rotation{Online: &k2}, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.online.Accept(f.repo, root3, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("old cloud Accept(root v3) = %v", err)
	}
	next, err := cloud2.Accept(f.repo, root3, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.online, f.repo = cloud2, next
	f.srv.publish(t, next)
	if _, err := f.dev.Target(context.Background(), "hello", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	if got := trustedVersion(t, f.state, "root"); got != 3 {
		t.Fatalf("trusted root v%d, want v3", got)
	}
	// A root that skips a version is refused: devices need each one.
	k3 := k2
	root4, _ := rotateRoot(f.opDir, Rotation{Online: &k3}, f.clk.now())
	root5, _ := rotateRoot(f.opDir, Rotation{Online: &k3}, f.clk.now())
	if _, err := cloud2.Accept(f.repo, root5, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Accept(v5 after v3) = %v", err)
	}
	if _, err := cloud2.Accept(f.repo, root4, nil); err != nil {
		t.Fatal(err)
	}
}

func TestInitRepoRefusals(t *testing.T) {
	o, err := OpenOnline(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "r")
	if err := InitRepo(dir, o.Keys()); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, dir)
	if err := InitRepo(dir, o.Keys()); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second InitRepo = %v", err)
	}
	// Keys only (a root.json deleted by hand) still count.
	os.Remove(filepath.Join(dir, "root.json"))
	if err := InitRepo(dir, o.Keys()); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("InitRepo over keys = %v", err)
	}
	delete(before, "root.json")
	if after := dirState(t, dir); !maps.Equal(before, after) {
		t.Fatalf("refused InitRepo changed %s", dir)
	}
	// A foreign online key type is refused before anything is made.
	_, rsaLike, _ := ed25519.GenerateKey(rand.Reader)
	empty := filepath.Join(t.TempDir(), "e")
	if err := InitRepo(empty, OnlineKeys{Snapshot: rsaLike, Timestamp: o.Keys().Timestamp}); err == nil {
		t.Fatal("InitRepo with a private key as public key succeeded")
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused InitRepo made %s: %v", empty, err)
	}
}

func TestSignTargetRefusals(t *testing.T) {
	f := newFixture(t)
	before := dirState(t, f.opDir)
	for _, tc := range []struct {
		name, art, version, bundle string
		want                       error
	}{
		{"bad name", "Hello", "1.0.0", f.bundle, ErrBadName},
		{"name too long", strings.Repeat("a", 65), "1.0.0", f.bundle, ErrBadName},
		{"leading v", "hello", "v1.0.0", f.bundle, ErrBadName},
		{"missing bundle", "hello", "1.0.1", filepath.Join(t.TempDir(), "none"), os.ErrNotExist},
	} {
		if _, err := signTarget(f.opDir, tc.art, tc.version, tc.bundle, 0, f.clk.now()); !errors.Is(err, tc.want) {
			t.Errorf("%s: SignTarget = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := signTarget(f.opDir, strings.Repeat("a", 64), "1.0.0", f.bundle, 0, f.clk.now()); err != nil {
		t.Errorf("64-character name: %v", err)
	}
	f2 := filepath.Join(t.TempDir(), "nokeys")
	os.MkdirAll(filepath.Join(f2, "keys"), 0o700)
	os.WriteFile(filepath.Join(f2, "root.json"), readFile(t, filepath.Join(f.opDir, "root.json")), 0o644)
	os.WriteFile(filepath.Join(f2, "targets.json"), readFile(t, filepath.Join(f.opDir, "targets.json")), 0o644)
	if _, err := signTarget(f2, "hello", "1.0.0", f.bundle, 0, f.clk.now()); !errors.Is(err, ErrNoKey) {
		t.Errorf("SignTarget without keys = %v", err)
	}
	delete(before, "targets.json")
	after := dirState(t, f.opDir)
	delete(after, "targets.json") // the 64-character one changed it, on purpose
	if !maps.Equal(before, after) {
		t.Fatal("refused SignTarget changed the repository")
	}
}

func TestOnlineRefusals(t *testing.T) {
	f := newFixture(t)
	other, err := OpenOnline(t.TempDir(), &OnlineOptions{Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	root := readFile(t, filepath.Join(f.opDir, "1.root.json"))
	targets := readFile(t, filepath.Join(f.opDir, "targets.json"))
	if _, err := other.Accept(Repo{}, root, targets); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Accept by a cloud the root does not name = %v", err)
	}
	if _, err := f.online.Accept(Repo{}, nil, targets); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Accept without a root = %v", err)
	}
	if _, err := f.online.Accept(Repo{}, root, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Accept without targets = %v", err)
	}
	short, err := signTarget(f.opDir, "hello", "1.0.1", f.bundle, time.Hour, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	f.clk.add(2 * time.Hour)
	if _, err := f.online.Accept(f.repo, nil, short); !errors.Is(err, ErrExpired) {
		t.Fatalf("Accept(expired targets) = %v", err)
	}
	for _, junk := range [][]byte{[]byte("{"), []byte(`{"signed":{"_type":"snapshot"}}`), root} {
		if _, err := f.online.Accept(f.repo, nil, junk); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Accept(%.20q) = %v", junk, err)
		}
	}
}

func TestSizeBounds(t *testing.T) {
	f := newFixture(t)
	targets, err := signTarget(f.opDir, "hello", "1.0.1", f.bundle, 0, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	pad := func(b []byte, n int) []byte { return append(bytes.Clone(b), bytes.Repeat([]byte(" "), n-len(b))...) }
	if _, err := f.online.Accept(f.repo, nil, pad(targets, MaxTargetsSize+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Accept(targets of MaxTargetsSize+1) = %v", err)
	}
	if _, err := f.online.Accept(f.repo, nil, pad(targets, MaxTargetsSize)); err != nil {
		t.Fatalf("Accept(targets of MaxTargetsSize) = %v", err)
	}
	// The device: a timestamp of exactly the limit is read, one more is not.
	f.srv.set("timestamp.json", pad(f.repo.Timestamp, MaxTimestampSize+1))
	f.refuses(t, "hello", "1.0.0", ErrTampered)
	f.srv.set("timestamp.json", pad(f.repo.Timestamp, MaxTimestampSize))
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatalf("timestamp of MaxTimestampSize: %v", err)
	}
}

func TestVerifierFetchErrors(t *testing.T) {
	f := newFixture(t)
	f.srv.srv.Close()
	f.refuses(t, "hello", "1.0.0", nil) // any error: the transport's
	if _, err := NewVerifier([]byte("{}"), f.srv.fetcher(), t.TempDir(), nil); err == nil {
		t.Fatal("NewVerifier accepted a junk root")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g := newFixture(t)
	before := dirState(t, g.state)
	if _, err := g.dev.Target(ctx, "hello", "1.0.0"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Target(cancelled) = %v", err)
	}
	if !maps.Equal(before, dirState(t, g.state)) {
		t.Fatal("state changed")
	}
}

func TestVerifierRestart(t *testing.T) {
	f := newFixture(t)
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a refresh left its scratch directory.
	stale := filepath.Join(f.state, ".refresh-123")
	os.MkdirAll(stale, 0o700)
	os.WriteFile(filepath.Join(stale, "timestamp.json"), []byte("junk"), 0o600)
	trusted := dirState(t, f.state)
	delete(trusted, ".refresh-123/")
	delete(trusted, ".refresh-123/timestamp.json")
	v, err := NewVerifier(readFile(t, filepath.Join(f.opDir, "1.root.json")), f.srv.fetcher(), f.state, &VerifierOptions{Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(trusted, dirState(t, f.state)) {
		t.Fatal("NewVerifier did not remove only the stale scratch directory")
	}
	// The restarted verifier keeps its rollback protection: the state
	// it persisted is the floor.
	old := newerRepo(t, f)
	f.srv.publish(t, old)
	before := dirState(t, f.state)
	if _, err := v.Target(context.Background(), "hello", "1.0.0"); !errors.Is(err, ErrRollback) {
		t.Fatalf("restarted verifier: %v", err)
	}
	if !maps.Equal(before, dirState(t, f.state)) {
		t.Fatal("state changed")
	}
}

func TestCheckNameBounds(t *testing.T) {
	long := "1.0.0-" + strings.Repeat("a", MaxVersionLen-len("1.0.0-"))
	for _, tc := range []struct {
		name, version string
		ok            bool
	}{
		{"a", "0.0.0", true},
		{strings.Repeat("a", 64), "1.0.0", true},
		{strings.Repeat("a", 65), "1.0.0", false},
		{"hello", long, true},
		{"hello", long + "a", false},
		{"hello", "1.0.0-rc.1+build.5", true},
		{"hello", "1.0", false},
		{"hello", "01.0.0", false},
		{"hello", "v1.0.0", false},
		{".hello", "1.0.0", false},
		{"hel/lo", "1.0.0", false},
		{"hello", "1.0.0/../x", false},
	} {
		err := CheckName(tc.name, tc.version)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadName)) {
			t.Errorf("CheckName(%q, %q) = %v, want ok=%v", tc.name, tc.version, err, tc.ok)
		}
	}
}

func TestOnlineRefusesAnExpiredRoot(t *testing.T) {
	f := newFixture(t)
	targets, err := signTarget(f.opDir, "hello", "1.0.1", f.bundle, 2*DefaultRootExpiry, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	f.clk.add(DefaultRootExpiry + time.Hour)
	if next, err := f.online.Accept(f.repo, nil, targets); !errors.Is(err, ErrExpired) || next.Targets != nil {
		t.Fatalf("Accept under an expired root = %v", err)
	}
	// The operator renews the root; the cloud takes both.
	root2, err := rotateRoot(f.opDir, Rotation{}, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.online.Accept(f.repo, root2, targets); err != nil {
		t.Fatal(err)
	}
}

func TestDirFetcher(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	files, err := f.repo.Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	state := filepath.Join(t.TempDir(), "state")
	v, err := NewVerifier(files["1.root.json"], DirFetcher(dir), state, &VerifierOptions{Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ti, err := v.Target(context.Background(), "hello", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ti.CheckFile(f.bundle); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := DirFetcher(dir).Fetch(ctx, "2.root.json", MaxRootSize); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	for _, name := range []string{"../timestamp.json", "a/b", `a\b`, "..", ".", "", "x?y", "%2e%2e"} {
		if _, err := DirFetcher(dir).Fetch(ctx, name, MaxRootSize); !errors.Is(err, ErrInvalid) {
			t.Errorf("DirFetcher.Fetch(%q) = %v", name, err)
		}
		if _, err := f.srv.fetcher().Fetch(ctx, name, MaxRootSize); !errors.Is(err, ErrInvalid) {
			t.Errorf("HTTPFetcher.Fetch(%q) = %v", name, err)
		}
	}
	n := int64(len(files["timestamp.json"]))
	if _, err := DirFetcher(dir).Fetch(ctx, "timestamp.json", n); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := DirFetcher(dir).Fetch(ctx, "timestamp.json", n-1); !errors.Is(err, ErrTampered) {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestRemoveTarget(t *testing.T) {
	f := newFixture(t)
	if _, err := f.dev.Target(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, filepath.Join(f.opDir, "targets.json"))
	if _, err := removeTarget(f.opDir, "hello", "9.9.9", 0, f.clk.now()); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("removing an unsigned version: %v", err)
	}
	if _, err := removeTarget(f.opDir, "hello", "v1", 0, f.clk.now()); !errors.Is(err, ErrBadName) {
		t.Fatalf("removing a bad version: %v", err)
	}
	if !bytes.Equal(before, readFile(t, filepath.Join(f.opDir, "targets.json"))) {
		t.Fatal("a refused removal changed targets.json")
	}
	targets, err := removeTarget(f.opDir, "hello", "1.0.0", 0, f.clk.now())
	if err != nil {
		t.Fatal(err)
	}
	f.accept(t, nil, targets)
	f.refuses(t, "hello", "1.0.0", ErrUnknownTarget)
	if list, err := ListTargets(f.repo.Targets); err != nil || len(list) != 0 {
		t.Fatalf("ListTargets = %v, %v", list, err)
	}
}
