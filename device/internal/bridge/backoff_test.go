package bridge

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

func TestBackoffWindow(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: 30 * time.Second}
	tests := []struct {
		name string
		n    int
		want time.Duration
	}{
		{"first", 0, time.Second},
		{"second", 1, 2 * time.Second},
		{"fifth", 4, 16 * time.Second},
		{"capped", 5, 30 * time.Second},
		{"far beyond the cap", 1000, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Window(tt.n); got != tt.want {
				t.Errorf("Window(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

// TestBackoffDistribution checks that delays are spread uniformly over the
// whole window (full jitter), so a fleet that lost the cloud at once does not
// come back at once.
func TestBackoffDistribution(t *testing.T) {
	tests := []struct {
		name string
		b    Backoff
		n    int
		lo   time.Duration
		hi   time.Duration
	}{
		{"first attempt", Backoff{Base: time.Second, Cap: time.Minute}, 0, 0, time.Second},
		{"sixth attempt", Backoff{Base: time.Second, Cap: time.Minute}, 5, 0, 32 * time.Second},
		{"capped", Backoff{Base: time.Second, Cap: time.Minute}, 20, 0, time.Minute},
		{"with a floor", Backoff{Base: 5 * time.Minute, Cap: time.Hour, Min: time.Minute}, 0, time.Minute, 5 * time.Minute},
	}
	const devices = 10000
	const buckets = 10
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			b := tt.b
			b.Rand = r.Float64
			var counts [buckets]int
			var sum float64
			width := float64(tt.hi - tt.lo)
			for range devices {
				d := b.Delay(tt.n)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("Delay(%d) = %v, outside [%v, %v]", tt.n, d, tt.lo, tt.hi)
				}
				f := float64(d-tt.lo) / width
				sum += f
				counts[min(int(f*buckets), buckets-1)]++
			}
			if mean := sum / devices; math.Abs(mean-0.5) > 0.02 {
				t.Errorf("mean position in window = %.3f, want about 0.5", mean)
			}
			// Uniform: every tenth of the window gets about a tenth of the
			// devices; no bucket holds a herd.
			var chi2 float64
			want := float64(devices) / buckets
			for i, c := range counts {
				if float64(c) < want*0.85 || float64(c) > want*1.15 {
					t.Errorf("bucket %d holds %d delays, want about %.0f", i, c, want)
				}
				chi2 += (float64(c) - want) * (float64(c) - want) / want
			}
			// 9 degrees of freedom: 27.9 is the 0.001 critical value.
			if chi2 > 27.9 {
				t.Errorf("chi² = %.1f: delays are not uniform over the window", chi2)
			}
		})
	}
}

func TestBackoffDefaultRandDiffers(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: time.Minute}
	seen := map[time.Duration]bool{}
	for range 100 {
		seen[b.Delay(6)] = true
	}
	if len(seen) < 90 {
		t.Errorf("100 delays gave only %d distinct values", len(seen))
	}
}

// TestRejectedBackoffBounds: the wait while rejected is RejectedRetry/2 at
// the least and RejectedRetry at the most, whatever the attempt.
func TestRejectedBackoffBounds(t *testing.T) {
	o := Options{RejectedRetry: 10 * time.Second}
	for _, tc := range []struct {
		rand float64
		want time.Duration
	}{
		{0, 5 * time.Second},
		{0.5, 7500 * time.Millisecond},
		{0.999999, 10 * time.Second},
	} {
		o.Backoff.Rand = func() float64 { return tc.rand }
		b := rejectedBackoff(o)
		for _, n := range []int{0, 1, 10, 100} {
			if got := b.Delay(n); got < tc.want-time.Millisecond || got > tc.want {
				t.Errorf("rand %v, attempt %d: %v, want %v", tc.rand, n, got, tc.want)
			}
		}
	}
	var d Options
	d.DeviceID, d.DataDir, d.CloudURL = "dev-1", t.TempDir(), "ws://127.0.0.1:1/v1/device"
	pub, err := keys.LoadPublic("testdata/cloud_public.pem")
	if err != nil {
		t.Fatal(err)
	}
	d.CloudKey = pub
	if err := d.setDefaults(); err != nil || d.RejectedRetry != DefaultRejectedRetry || DefaultRejectedRetry != 10*time.Second {
		t.Fatalf("default RejectedRetry %v (%v)", d.RejectedRetry, err)
	}
}
