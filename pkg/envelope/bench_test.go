package envelope

import (
	"crypto"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchPayload is a 1 KiB JSON-RPC request of the usual shape.
var benchPayload = func() []byte {
	p := `{"jsonrpc":"2.0","id":12345,"method":"containers.logs","params":{"container":"web-1","tail":100,"since":"10m","timestamps":true,"filter":"`
	tail := `"}}`
	return []byte(p + strings.Repeat("x", 1024-len(p)-len(tail)) + tail)
}()

type benchKey struct {
	name   string
	signer string
	key    func(testing.TB) crypto.Signer
	// pool is how many distinct envelopes (seqs 1 to pool) BenchmarkOpen
	// cycles through, with a fresh window each cycle: opening one envelope
	// twice is a replay.
	pool int
}

var benchKeys = []benchKey{
	{"ed25519", "dev-1", func(testing.TB) crypto.Signer { return testEd }, 4096},
	{"rsa-pss-sha256", "dev-rsa", func(tb testing.TB) crypto.Signer { return testRSA(tb) }, 512},
}

func BenchmarkSeal(b *testing.B) {
	if len(benchPayload) != 1024 {
		b.Fatalf("payload is %d bytes", len(benchPayload))
	}
	for _, k := range benchKeys {
		b.Run(k.name, func(b *testing.B) {
			s, err := NewSealer(k.signer, k.key(b))
			if err != nil {
				b.Fatal(err)
			}
			s.Now = fixedNow(testT0)
			b.ReportAllocs()
			b.SetBytes(int64(len(benchPayload)))
			for b.Loop() {
				if _, err := s.Seal(deviceHeader(), benchPayload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, k := range benchKeys {
		b.Run(k.name, func(b *testing.B) {
			s, err := NewSealer(k.signer, k.key(b))
			if err != nil {
				b.Fatal(err)
			}
			wires := make([][]byte, k.pool)
			for i := range wires {
				if wires[i], err = s.SealAt(seqHeader(uint64(i+1)), benchPayload, testT0); err != nil {
					b.Fatal(err)
				}
			}
			o := newOpener(b)
			b.ReportAllocs()
			b.SetBytes(int64(len(benchPayload)))
			i := 0
			for b.Loop() {
				if i == len(wires) {
					i = 0
					o.Window = NewReplayWindow(0)
				}
				if _, err := o.Open(wires[i]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkEd25519VerifyBaseline is the floor for BenchmarkOpen/ed25519: a
// bare ed25519.Verify of the same signed bytes. docs/benchmarks.md compares
// the two.
func BenchmarkEd25519VerifyBaseline(b *testing.B) {
	wire := sealTest(b, deviceHeader(), benchPayload)
	m, payload, err := Peek(wire, 0)
	if err != nil {
		b.Fatal(err)
	}
	msg := SignedBytes(m, payload)
	sig, _ := b64.DecodeString(m.Sig)
	pub := testEd.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify failed")
		}
	}
}

// BenchmarkOpenVsVerifyPaired alternates one Open/ed25519 and one bare
// ed25519.Verify of the same signed bytes per iteration, timing each call,
// and reports the median of each and their ratio. Paired samples make the
// ratio robust on a shared, noisy machine, where consecutive benchmarks can
// see very different contention.
func BenchmarkOpenVsVerifyPaired(b *testing.B) {
	s, err := NewSealer("dev-1", testEd)
	if err != nil {
		b.Fatal(err)
	}
	const pool = 4096
	wires := make([][]byte, pool)
	for i := range wires {
		if wires[i], err = s.SealAt(seqHeader(uint64(i+1)), benchPayload, testT0); err != nil {
			b.Fatal(err)
		}
	}
	m, payload, _ := Peek(wires[0], 0)
	msg := SignedBytes(m, payload)
	sig, _ := b64.DecodeString(m.Sig)
	pub := testEd.Public().(ed25519.PublicKey)
	o := newOpener(b)
	var openNs, verifyNs []float64
	i := 0
	for b.Loop() {
		if i == pool {
			i = 0
			o.Window = NewReplayWindow(0)
		}
		t0 := time.Now()
		if _, err := o.Open(wires[i]); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify failed")
		}
		t2 := time.Now()
		openNs = append(openNs, float64(t1.Sub(t0)))
		verifyNs = append(verifyNs, float64(t2.Sub(t1)))
		i++
	}
	mo, mv := median(openNs), median(verifyNs)
	b.ReportMetric(mo, "open-ns")
	b.ReportMetric(mv, "verify-ns")
	b.ReportMetric(mo/mv, "open/verify")
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	slices.Sort(x)
	return x[len(x)/2]
}

// BenchmarkPeek measures the parsing Open does before any cryptography:
// size, strict shape, and the strict payload parse made on the same pass.
func BenchmarkPeek(b *testing.B) {
	wire := sealTest(b, deviceHeader(), benchPayload)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if _, _, err := Peek(wire, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplayWindow measures recording one seq, the window's share of
// Open: in order (the common case), reordered within the window, and with
// every seq a jump of more than the window (which clears the whole bitmap).
func BenchmarkReplayWindow(b *testing.B) {
	tests := []struct {
		name string
		seq  func(i uint64) uint64
	}{
		{name: "in order", seq: func(i uint64) uint64 { return i + 1 }},
		{name: "pairs swapped", seq: func(i uint64) uint64 { return i ^ 1 + 1 }},
		{name: "jumps", seq: func(i uint64) uint64 { return (i + 1) * 2 * DefaultWindow }},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			w := NewReplayWindow(0)
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				if err := w.record(tt.seq(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
