package release

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// FuzzAccept feeds Online.Accept, the entry point for the bytes operators
// upload, with arbitrary root.json and targets.json against a real
// repository. Whatever the bytes, Accept must not panic, must return the
// zero Repo with its error, and anything it accepts must verify: the
// targets against the root it returns, the snapshot and timestamp against
// that root's online keys.
//
// The seed corpus is testdata/fuzz/FuzzAccept (hand-made malformed
// shapes) plus, added here, a valid new targets.json and root.json.
func FuzzAccept(f *testing.F) {
	fx := newFixture(f)
	targets, err := signTarget(fx.opDir, "hello", "1.0.1", fx.bundle, 0, fx.clk.now())
	if err != nil {
		f.Fatal(err)
	}
	root2, err := rotateRoot(fx.opDir, Rotation{}, fx.clk.now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(nil), targets)
	f.Add(root2, []byte(nil))
	f.Add(root2, targets)
	f.Add(readFile(f, filepath.Join(fx.opDir, "1.root.json")), fx.repo.Targets)
	cur := fx.repo
	f.Fuzz(func(t *testing.T, root, targets []byte) {
		next, err := fx.online.Accept(cur, root, targets)
		if err != nil {
			if next.Root != nil || next.Targets != nil || next.Snapshot != nil || next.Timestamp != nil {
				t.Fatalf("Accept returned a Repo with error %v", err)
			}
			return
		}
		r, err := parseRoot(next.Root)
		if err != nil {
			t.Fatal(err)
		}
		for role, b := range map[string][]byte{metadata.TARGETS: next.Targets, metadata.SNAPSHOT: next.Snapshot, metadata.TIMESTAMP: next.Timestamp} {
			var verr error
			switch role {
			case metadata.TARGETS:
				m, err := parseTargets(b)
				if err != nil {
					t.Fatal(err)
				}
				verr = r.VerifyDelegate(role, m)
			case metadata.SNAPSHOT:
				m, err := parseSnapshot(b)
				if err != nil {
					t.Fatal(err)
				}
				verr = r.VerifyDelegate(role, m)
			case metadata.TIMESTAMP:
				m, err := parseTimestamp(b)
				if err != nil {
					t.Fatal(err)
				}
				verr = r.VerifyDelegate(role, m)
			}
			if verr != nil {
				t.Fatalf("accepted %s does not verify: %v", role, verr)
			}
		}
	})
}

// TestFuzzCorpusPresent keeps the seed corpus from disappearing unnoticed.
func TestFuzzCorpusPresent(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzAccept"))
	if err != nil || len(entries) < 5 {
		t.Fatalf("seed corpus: %d entries, %v", len(entries), err)
	}
}

// FuzzVerifier serves a device's Verifier arbitrary timestamp.json,
// snapshot.json, targets.json and 2.root.json (empty: the file is
// missing) through a DirFetcher, the genuine 1.root.json pinned. Whatever
// the bytes: no panic; a refusal wraps one of the package's sentinels and
// leaves the trusted state as it was; and what the Verifier accepts is
// the genuine target (nobody without the operator's keys can sign another).
//
// The seed corpus is testdata/fuzz/FuzzVerifier plus, added here, the
// genuine files and a genuine root rotation.
func FuzzVerifier(f *testing.F) {
	fx := newFixture(f)
	genuine, err := fx.dev.Target(context.Background(), "hello", "1.0.0")
	if err != nil {
		f.Fatal(err)
	}
	root1 := readFile(f, filepath.Join(fx.opDir, "1.root.json"))
	root2, err := rotateRoot(fx.opDir, Rotation{}, fx.clk.now())
	if err != nil {
		f.Fatal(err)
	}
	r := fx.repo
	f.Add(r.Timestamp, r.Snapshot, r.Targets, []byte(nil))
	f.Add(r.Timestamp, r.Snapshot, r.Targets, root2)
	f.Add(r.Timestamp, r.Snapshot, []byte(`{"signed":{}}`), []byte(nil))
	f.Add(r.Timestamp, []byte(`{"signatures":[],"signed":{"_type":"snapshot"}}`), r.Targets, []byte(nil))
	f.Add([]byte(`{"signatures":[{"keyid":"00","sig":"00"}],"signed":{"_type":"timestamp","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","meta":{}}}`), r.Snapshot, r.Targets, []byte(nil))
	f.Add([]byte(`[]`), []byte(nil), []byte(nil), []byte(`null`))
	sentinels := []error{ErrUntrusted, ErrRollback, ErrExpired, ErrTampered, ErrInvalid, ErrUnknownTarget, ErrNotFound}

	f.Fuzz(func(t *testing.T, timestamp, snapshot, targets, root []byte) {
		repo := t.TempDir()
		for name, b := range map[string][]byte{"timestamp.json": timestamp, "snapshot.json": snapshot, "targets.json": targets, "2.root.json": root} {
			if len(b) == 0 {
				continue
			}
			if err := os.WriteFile(filepath.Join(repo, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		state := filepath.Join(t.TempDir(), "state")
		v, err := NewVerifier(root1, DirFetcher(repo), state, &VerifierOptions{Now: fx.clk.now})
		if err != nil {
			t.Fatal(err)
		}
		before := dirState(t, state)
		ti, err := v.Target(context.Background(), "hello", "1.0.0")
		if err != nil {
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n == 0 {
				t.Fatalf("Target: %v (%T) wraps none of the release errors", err, err)
			}
			if after := dirState(t, state); !maps.Equal(before, after) {
				t.Fatalf("refused (%v) but the trusted state changed", err)
			}
			return
		}
		if !reflect.DeepEqual(ti, genuine) {
			t.Fatalf("accepted %+v, the genuine target is %+v", ti, genuine)
		}
	})
}
