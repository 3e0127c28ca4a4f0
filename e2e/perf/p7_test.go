package perf

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// p7Run is one P7 measurement: the cloud's download path and a plain
// http.FileServer of the same bytes, each downloaded by len(urls) clients
// at once, alternately for rounds rounds (the file server first in even
// rounds, the cloud first in odd ones) so that machine noise hits both.
type p7Run struct {
	Cloud, Files Download // summed over the rounds (Rounds: each round's time)
	URLs         []string // the devices' download URLs
}

func runP7(tb testing.TB, clients, size, rounds int) p7Run {
	tb.Helper()
	c := startOTACloud(tb)
	dir := tb.TempDir()
	path, data := WriteArtifact(tb, dir, "artifact.bin", size)
	c.upload(tb, "perf", "1.0.0", path)
	urls := c.downloadURLs(tb, "perf", clients)
	plain := repeat("http://"+StartPerfbase(tb, "fileserver", "-dir", dir)+"/"+filepath.Base(path), clients)
	r := p7Run{URLs: urls}
	// One download from each side first, untimed: the cloud's database
	// pool and both processes' first-request paths are warm when the
	// measured rounds start, as they are in a cloud that has been running.
	DownloadAll(tb, urls[:1], data)
	DownloadAll(tb, plain[:1], data)
	add := func(sum *Download, d Download) {
		sum.Rounds = append(sum.Rounds, d.Elapsed)
		sum.Clients = d.Clients
		sum.Bytes += d.Bytes
		sum.Failed += d.Failed
		sum.Elapsed += d.Elapsed
		sum.Slowest = max(sum.Slowest, d.Slowest)
		if sum.FirstErr == nil {
			sum.FirstErr = d.FirstErr
		}
	}
	for i := range rounds {
		// Which side goes first alternates, so that neither always
		// follows the other's load.
		if i%2 == 0 {
			add(&r.Files, DownloadAll(tb, plain, data))
			add(&r.Cloud, DownloadAll(tb, urls, data))
		} else {
			add(&r.Cloud, DownloadAll(tb, urls, data))
			add(&r.Files, DownloadAll(tb, plain, data))
		}
	}
	return r
}

func BenchmarkP7(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if i > 0 {
			continue
		}
		clients, size := p7Sizes()
		const rounds = 3 // also in the quick form: one short round is all noise
		r := runP7(b, clients, size, rounds)
		if r.Cloud.Failed+r.Files.Failed > 0 {
			b.Errorf("downloads failed: cloud %d (first: %v), file server %d (first: %v)",
				r.Cloud.Failed, r.Cloud.FirstErr, r.Files.Failed, r.Files.FirstErr)
		}
		ratio := r.Cloud.MiBps() / r.Files.MiBps()
		Record(b, Row{ID: "P7", What: fmt.Sprintf("OTA: %d devices download a %d MiB artifact at once (GET /v1/ota/download/TOKEN, a token per device)", clients, size>>20),
			Result: r.Cloud.MiBps(), Unit: "MiB/s", Baseline: "plain http.FileServer, same file, same clients (B-http)",
			Base: r.Files.MiBps(), Ratio: ratio, Goal: "≥ 0.8 × http.FileServer", Met: p7Met(r.Cloud, r.Files),
			Command: "./scripts/bench.sh P7",
			Notes: fmt.Sprintf("%d rounds, each side downloaded once per round, the first alternating. cloud: %s. file server: %s", rounds,
				downloadNotes(r.Cloud), downloadNotes(r.Files))})
	}
}

// P7MinRatio is P7's goal: the cloud's download path at ≥ 0.8 × a plain
// http.FileServer's aggregate throughput.
const P7MinRatio = 0.8

// p7Met reports whether P7's goal is met: no download failed on either
// side and the cloud reached P7MinRatio × the file server.
func p7Met(cloud, files Download) bool {
	return cloud.Failed == 0 && files.Failed == 0 && files.MiBps() > 0 && cloud.MiBps() >= P7MinRatio*files.MiBps()
}

func TestP7Met(t *testing.T) {
	files := Download{Bytes: 1000 << 20, Elapsed: time.Second} // 1000 MiB/s
	tests := []struct {
		name        string
		cloud, file Download
		met         bool
	}{
		{"at 0.8", Download{Bytes: 800 << 20, Elapsed: time.Second}, files, true},
		{"below 0.8", Download{Bytes: 799 << 20, Elapsed: time.Second}, files, false},
		{"a failed cloud download", Download{Bytes: 2000 << 20, Failed: 1, Elapsed: time.Second}, files, false},
		{"a failed file server download", Download{Bytes: 2000 << 20, Elapsed: time.Second}, Download{Bytes: 1 << 20, Failed: 1, Elapsed: time.Second}, false},
		{"no file server figure", Download{Bytes: 2000 << 20, Elapsed: time.Second}, Download{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p7Met(tt.cloud, tt.file); got != tt.met {
				t.Fatalf("met %v, want %v", got, tt.met)
			}
		})
	}
}

// TestP7Short is P7's short form: 5 devices download a 1 MiB artifact from
// the cloud with their own tokens, every byte compared; a tampered token is
// refused (403) without a byte of the artifact.
func TestP7Short(t *testing.T) {
	const clients, size = 5, 1 << 20
	r := runP7(t, clients, size, 1)
	for _, d := range []Download{r.Cloud, r.Files} {
		if d.Failed > 0 || d.Bytes != clients*size {
			t.Fatalf("%d bytes, %d failed, first: %v", d.Bytes, d.Failed, d.FirstErr)
		}
	}
	u := r.URLs[0]
	i := strings.LastIndexByte(u, '/') + 10
	flip := byte('A')
	if u[i] == 'A' {
		flip = 'B'
	}
	resp, err := http.Get(u[:i] + string(flip) + u[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(body) > 100 {
		t.Fatalf("a tampered token: %s with %d bytes, want 403 and no artifact", resp.Status, len(body))
	}
	Record(t, Row{ID: "P7", What: "OTA (short)", Result: r.Cloud.MiBps(), Unit: "MiB/s", Base: r.Files.MiBps(), Short: true,
		Notes: downloadNotes(r.Cloud)})
}
