package ota

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// entry is one tar entry of a test bundle.
type entry struct {
	name     string
	typ      byte
	body     string
	linkname string
	mode     int64
}

func makeBundle(tb testing.TB, entries ...entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.linkname, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// appBundle is a normal bundle: a version file and a run script, sized
// (with incompressible padding) to about size bytes.
func appBundle(tb testing.TB, version string, size int) []byte {
	tb.Helper()
	pad := make([]byte, size)
	var x uint64 = 0x9E3779B97F4A7C15 ^ uint64(len(version))
	for i := range pad {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		pad[i] = byte(x)
	}
	return makeBundle(tb,
		entry{name: "bin/", typ: tar.TypeDir},
		entry{name: "bin/run", body: "#!/bin/sh\necho " + version + "\n", mode: 0o755},
		entry{name: "VERSION", body: version + "\n"},
		entry{name: "data/pad.bin", body: string(pad)},
		entry{name: "current-version", typ: tar.TypeSymlink, linkname: "VERSION"},
	)
}

// mapVerifier knows targets by NAME/VERSION (a stand-in for area A's TUF
// verifier: length and sha256 of known bytes).
type mapVerifier map[string][]byte

func (v mapVerifier) Target(_ context.Context, name, version string) (TargetInfo, error) {
	b, ok := v[name+"/"+version]
	if !ok {
		return TargetInfo{}, fmt.Errorf("target %s/%s is not signed", name, version)
	}
	s := sha256.Sum256(b)
	return TargetInfo{Path: name + "/" + version + "/bundle.tar.gz", Length: int64(len(b)), Hashes: map[string][]byte{"sha256": s[:]}, Name: name, Version: version}, nil
}

// fileServer serves one body with single-range support; fault, when set,
// may take over a request (returning true) by its 1-based number.
type fileServer struct {
	mu    sync.Mutex
	body  []byte
	fault func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool
	n     int
	sent  atomic.Int64
}

func (f *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.n++
	n, body, fault := f.n, f.body, f.fault
	f.mu.Unlock()
	if fault != nil && fault(n, w, r, body) {
		return
	}
	serveRange(w, r, body, &f.sent)
}

func (f *fileServer) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func serveRange(w http.ResponseWriter, r *http.Request, body []byte, sent *atomic.Int64) {
	start := 0
	if rg := r.Header.Get("Range"); rg != "" {
		v, ok := strings.CutPrefix(rg, "bytes=")
		v, _ = strings.CutSuffix(v, "-")
		s, err := strconv.Atoi(v)
		if !ok || err != nil || s < 0 {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if s >= len(body) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(body)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = s
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, len(body)-1, len(body)))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)-s))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	n, _ := w.Write(body[start:])
	if sent != nil {
		sent.Add(int64(n))
	}
}

// cutAfter writes the right headers, then only k bytes, then drops the
// connection.
func cutAfter(w http.ResponseWriter, r *http.Request, body []byte, k int, sent *atomic.Int64) {
	start := 0
	if rg := r.Header.Get("Range"); rg != "" {
		v, _ := strings.CutPrefix(rg, "bytes=")
		v, _ = strings.CutSuffix(v, "-")
		start, _ = strconv.Atoi(v)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(body)-1, len(body)))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	end := min(len(body), start+k)
	n, _ := w.Write(body[start:end])
	sent.Add(int64(n))
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

type testDevice struct {
	tb   testing.TB
	dir  string
	hook string
	cfg  Config
	m    *Manager
}

// hookScript writes a restart hook that appends "REASON SLOT ARG1" to
// hook.log and fails when the slot holds a file named FAIL_HOOK.
func hookScript(tb testing.TB, dir string) string {
	tb.Helper()
	p := filepath.Join(dir, "hook.sh")
	script := `#!/bin/sh
echo "$BOSUN_OTA_REASON $BOSUN_OTA_SLOT $1 $BOSUN_OTA_TARGET prev=$BOSUN_OTA_PREVIOUS_SLOT" >> "` + filepath.Join(dir, "hook.log") + `"
if [ -e "$1/FAIL_HOOK" ]; then echo "app did not start" >&2; exit 3; fi
`
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newDevice(tb testing.TB, v Verifier, mod ...func(*Config)) *testDevice {
	tb.Helper()
	root := tb.TempDir()
	d := &testDevice{tb: tb, dir: filepath.Join(root, "ota")}
	d.hook = hookScript(tb, root)
	d.cfg = Config{Dir: d.dir, Verifier: v, Hook: d.hook, RetryBase: 5 * time.Millisecond, DownloadAttempts: 5,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range mod {
		f(&d.cfg)
	}
	d.open()
	return d
}

func (d *testDevice) open() {
	d.tb.Helper()
	m, err := New(d.cfg)
	if err != nil {
		d.tb.Fatal(err)
	}
	d.m = m
	d.tb.Cleanup(m.Close)
}

func (d *testDevice) hookLog() []string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(d.dir), "hook.log"))
	return strings.Fields(strings.ReplaceAll(string(b), "\n", " | "))
}

func (d *testDevice) hookLines() []string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(d.dir), "hook.log"))
	return slices.DeleteFunc(strings.Split(string(b), "\n"), func(s string) bool { return s == "" })
}

// eventually polls cond every 10ms until it holds or 10s pass.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statuses returns the spooled reports' statuses (percent appended for
// downloading) of update id.
func (d *testDevice) statuses(id string) []string {
	rs, err := d.m.Reports()
	if err != nil {
		d.tb.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.ID != id {
			continue
		}
		s := r.Status
		if r.Percent != nil {
			s += fmt.Sprintf(":%d", *r.Percent)
		}
		out = append(out, s)
	}
	return out
}

func (d *testDevice) last(id string) rpcproto.OTAStatusParams {
	rs, _ := d.m.Reports()
	var last rpcproto.OTAStatusParams
	for _, r := range rs {
		if r.ID == id {
			last = r
		}
	}
	return last
}

// waitFinal waits for the update's report that ends a phase: one of the
// statuses given.
func (d *testDevice) waitStatus(id string, want ...string) rpcproto.OTAStatusParams {
	d.tb.Helper()
	var got rpcproto.OTAStatusParams
	eventually(d.tb, "status "+strings.Join(want, "/")+" of "+id, func() bool {
		got = d.last(id)
		return slices.Contains(want, got.Status)
	})
	return got
}

// stateBytes reads state.json under the manager's lock: a final report
// (succeeded, failed) is spooled, and so visible to waitStatus, before
// the same locked step writes the state once more to forget the job
// (forgetJobLocked; the job stays until its report is spooled, for a
// crash in between). Read without the lock, that last write could land
// between two reads of a test.
func (d *testDevice) stateBytes() []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(d.dir, "state.json"))
	if err != nil {
		d.tb.Fatal(err)
	}
	return b
}

func readFileT(tb testing.TB, p string) string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Fatal(err)
	}
	return string(b)
}

func updateParams(target, url string, ct int) rpcproto.OTAUpdateParams {
	return rpcproto.OTAUpdateParams{Target: target, URL: url, CommitTimeout: ct}
}

func mustUnpackFile(tb testing.TB, bundle []byte, name string) []byte {
	tb.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		tb.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			tb.Fatalf("%s not in bundle: %v", name, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return b
		}
	}
}
