package perf

import (
	"crypto/ed25519"
	"crypto/rand"
	"runtime"
	"slices"
	"testing"
	"time"
)

// EnvelopeSize is the size of the signed bytes the baselines use: a
// realistic JSON-RPC envelope of about 1 KiB.
const EnvelopeSize = 1024

// Crypto is the cost of the cryptography of one signed round trip: two
// Ed25519 signatures and two verifications (request sealed by the cloud and
// opened by the device, reply sealed by the device and opened by the
// cloud) of EnvelopeSize bytes, on one core.
type Crypto struct {
	Cost     time.Duration // one round trip's 2 signs + 2 verifies, median of the batches
	Procs    int           // GOMAXPROCS
	Batches  int           // how many batches the median is of
	PerBatch int           // round trips per batch
}

// Ceiling is the round trips per second the cryptography alone allows on
// all cores: GOMAXPROCS / Cost.
func (c Crypto) Ceiling() float64 {
	if c.Cost <= 0 {
		return 0
	}
	return float64(c.Procs) / c.Cost.Seconds()
}

// MeasureCrypto times bare ed25519.Sign and ed25519.Verify (no envelope
// code) for about d on one goroutine, in batches, and returns the median
// batch's cost per round trip.
func MeasureCrypto(tb testing.TB, d time.Duration) Crypto {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	msg := make([]byte, EnvelopeSize)
	rand.Read(msg)
	const perBatch = 50
	var costs []time.Duration
	end := time.Now().Add(d)
	for len(costs) < 5 || time.Now().Before(end) {
		t0 := time.Now()
		for range perBatch {
			for range 2 {
				sig := ed25519.Sign(priv, msg)
				if !ed25519.Verify(pub, msg, sig) {
					tb.Fatal("perf: ed25519 signature does not verify")
				}
				msg[0]++ // a new message each time, like a new envelope
			}
		}
		costs = append(costs, time.Since(t0)/perBatch)
	}
	slices.Sort(costs)
	return Crypto{Cost: costs[len(costs)/2], Procs: runtime.GOMAXPROCS(0), Batches: len(costs), PerBatch: perBatch}
}

// CryptoCeiling is the crypto ceiling in round trips per second, measured
// now for about a second (a fifth of that in the quick form): what P1
// compares its signed calls per second with.
func CryptoCeiling(tb testing.TB) float64 {
	tb.Helper()
	d := time.Second
	if Quick() {
		d = 200 * time.Millisecond
	}
	return MeasureCrypto(tb, d).Ceiling()
}
