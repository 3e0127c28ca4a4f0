package release

import (
	"os"
	"path/filepath"
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
