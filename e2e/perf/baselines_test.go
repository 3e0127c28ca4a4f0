package perf

import (
	"fmt"
	"testing"
	"time"
)

// sizes of the baselines' long and quick forms.
func baselineSizes() (clients int, d time.Duration) {
	if Quick() {
		return 100, 2 * time.Second
	}
	return 100, 6 * time.Second // bench.sh fits 15 minutes
}

func BenchmarkBaselineCrypto(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if i > 0 {
			continue
		}
		d := 3 * time.Second
		if Quick() {
			d = 500 * time.Millisecond
		}
		c := MeasureCrypto(b, d)
		Record(b, Row{ID: "B-crypto", What: "crypto ceiling: bare Ed25519, 2 signs + 2 verifies of 1 KiB per round trip, all cores",
			Result: c.Ceiling(), Unit: "round trips/s",
			Command: "./scripts/bench.sh B-crypto",
			Notes: fmt.Sprintf("one round trip's cryptography costs %.1f µs on one core (median of %d batches of %d); GOMAXPROCS %d",
				float64(c.Cost)/float64(time.Microsecond), c.Batches, c.PerBatch, c.Procs)})
	}
}

func BenchmarkBaselineWSEcho(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if i > 0 {
			continue
		}
		clients, d := baselineSizes()
		addr := StartPerfbase(b, "wsecho")
		r := WSEcho(b, addr, clients, d)
		if r.Failed > 0 {
			b.Errorf("%d echo calls failed, first: %v", r.Failed, r.FirstErr)
		}
		Record(b, Row{ID: "B-ws", What: fmt.Sprintf("raw unsigned JSON-RPC echo over coder/websocket, %d clients, server in its own process", clients),
			Result: r.Rate(), Unit: "calls/s", Command: "./scripts/bench.sh B-ws",
			Notes: loadNotes(r, "calls")})
	}
}

func BenchmarkBaselineMQTT(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if i > 0 {
			continue
		}
		devices, d := baselineSizes()
		r := MQTTBaseline(b, StartMosquitto(b), devices, d)
		if r.Failed > 0 {
			b.Errorf("%d MQTT round trips failed, first: %v", r.Failed, r.FirstErr)
		}
		Record(b, Row{ID: "B-mqtt", What: fmt.Sprintf("MQTT v5 request/response through mosquitto (QoS 1, ResponseTopic + CorrelationData), %d devices", devices),
			Result: r.Rate(), Unit: "round trips/s", Command: "./scripts/bench.sh B-mqtt",
			Notes: loadNotes(r, "round trips")})
	}
}

func BenchmarkBaselineFileServer(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if i > 0 {
			continue
		}
		clients, size := p7Sizes()
		dir := b.TempDir()
		_, data := WriteArtifact(b, dir, "artifact.bin", size)
		addr := StartPerfbase(b, "fileserver", "-dir", dir)
		r := DownloadAll(b, repeat("http://"+addr+"/artifact.bin", clients), data)
		if r.Failed > 0 {
			b.Errorf("%d downloads failed, first: %v", r.Failed, r.FirstErr)
		}
		Record(b, Row{ID: "B-http", What: fmt.Sprintf("plain http.FileServer, %d MiB file, %d concurrent clients", size>>20, clients),
			Result: r.MiBps(), Unit: "MiB/s", Command: "./scripts/bench.sh B-http", Notes: downloadNotes(r)})
	}
}

// TestBaselinesShort is the short form of the baselines: tiny sizes, each
// checking that every operation succeeded.
func TestBaselinesShort(t *testing.T) {
	t.Run("crypto", func(t *testing.T) {
		c := MeasureCrypto(t, 20*time.Millisecond)
		if c.Cost <= 0 || c.Ceiling() <= 0 || c.Batches < 5 {
			t.Fatalf("crypto: %+v", c)
		}
		Record(t, Row{ID: "B-crypto", What: "crypto ceiling (short)", Result: c.Ceiling(), Unit: "round trips/s", Short: true})
	})
	t.Run("wsecho", func(t *testing.T) {
		r := WSEcho(t, StartPerfbase(t, "wsecho"), 5, 300*time.Millisecond)
		if r.Failed > 0 || r.Ops == 0 {
			t.Fatalf("ws echo: %d ok, %d failed, first: %v", r.Ops, r.Failed, r.FirstErr)
		}
		Record(t, Row{ID: "B-ws", What: "ws echo (short)", Result: r.Rate(), Unit: "calls/s", Short: true, Notes: loadNotes(r, "calls")})
	})
	t.Run("mqtt", func(t *testing.T) {
		r := MQTTBaseline(t, StartMosquitto(t), 5, 300*time.Millisecond)
		if r.Failed > 0 || r.Ops == 0 {
			t.Fatalf("mqtt: %d ok, %d failed, first: %v", r.Ops, r.Failed, r.FirstErr)
		}
		Record(t, Row{ID: "B-mqtt", What: "mqtt (short)", Result: r.Rate(), Unit: "round trips/s", Short: true, Notes: loadNotes(r, "round trips")})
	})
	t.Run("fileserver", func(t *testing.T) {
		dir := t.TempDir()
		_, data := WriteArtifact(t, dir, "a.bin", 1<<20)
		addr := StartPerfbase(t, "fileserver", "-dir", dir)
		r := DownloadAll(t, repeat("http://"+addr+"/a.bin", 5), data)
		if r.Failed > 0 || r.Bytes != 5<<20 {
			t.Fatalf("fileserver: %d bytes, %d failed, first: %v", r.Bytes, r.Failed, r.FirstErr)
		}
		// Bad input: a file it does not have is a 404 and counts as failed.
		if r := DownloadAll(t, []string{"http://" + addr + "/missing.bin"}, data); r.Failed != 1 || r.Bytes != 0 {
			t.Fatalf("a missing file: %+v", r)
		}
	})
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// p7Sizes are P7's clients and artifact size (and the file server's).
func p7Sizes() (clients, size int) {
	if Quick() {
		return 20, 20 << 20
	}
	return 100, 20 << 20
}
