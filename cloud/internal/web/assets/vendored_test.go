package assets

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
)

// row is one line of README.md's table: file, what, source.
var row = regexp.MustCompile("^\\| `([^`]+)` \\| ([^|]+) \\| ([^|]+) \\|$")

// TestVendoredFilesCarryVersionAndChecksum: every embedded file is in
// README.md's table; each that is not hand-written names its version (in
// the file name and the table) and the SHA-256 of its bytes, which must be
// the bytes embedded (scripts/sbom.sh puts them in bosun-cloud's SBOM).
func TestVendoredFilesCarryVersionAndChecksum(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string][2]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		if m := row.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			listed[m[1]] = [2]string{strings.TrimSpace(m[2]), strings.TrimSpace(m[3])}
		}
	}
	ents, err := fs.ReadDir(files, ".")
	if err != nil || len(ents) == 0 {
		t.Fatalf("embedded files: %v, %v", ents, err)
	}
	vendored := 0
	for _, e := range ents {
		r, ok := listed[e.Name()]
		if !ok {
			t.Errorf("%s is embedded but not in README.md's table", e.Name())
			continue
		}
		if r[1] == "hand-written" {
			continue
		}
		vendored++
		version := regexp.MustCompile(`-(\d+\.\d+\.\d+)\.`).FindStringSubmatch(e.Name())
		if version == nil || !strings.Contains(r[0], version[1]) {
			t.Errorf("%s: a vendored file names its version in its file name and in the table (%q)", e.Name(), r[0])
		}
		want := regexp.MustCompile("sha256 `([0-9a-f]{64})`").FindStringSubmatch(r[1])
		if want == nil {
			t.Errorf("%s: no sha256 in the table's source column %q", e.Name(), r[1])
			continue
		}
		b, _ := files.ReadFile(e.Name())
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want[1] {
			t.Errorf("%s: sha256 %x, README.md says %s: the file changed, or the table is stale", e.Name(), sum, want[1])
		}
	}
	if vendored == 0 {
		t.Fatal("no vendored file found: the table's format changed?")
	}
	if _, ok := listed[HTMX]; !ok {
		t.Errorf("HTMX (%s) is not in the table", HTMX)
	}
}
