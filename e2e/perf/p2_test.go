package perf

import (
	"testing"
	"time"
)

// TestP2Row checks P2's goal at and beyond each of its bounds.
func TestP2Row(t *testing.T) {
	mqtt := LoadResult{Ops: 1000, Elapsed: time.Second, P50: time.Millisecond, P99: 4 * time.Millisecond}
	tests := []struct {
		name   string
		signed LoadResult
		mqtt   LoadResult
		met    bool
	}{
		{"ratio at 0.6, p99 at 2x", LoadResult{Ops: 600, Elapsed: time.Second, P99: 8 * time.Millisecond}, mqtt, true},
		{"ratio below 0.6", LoadResult{Ops: 599, Elapsed: time.Second, P99: time.Millisecond}, mqtt, false},
		{"p99 beyond 2x", LoadResult{Ops: 2000, Elapsed: time.Second, P99: 8*time.Millisecond + 1}, mqtt, false},
		{"a failed signed call", LoadResult{Ops: 2000, Failed: 1, Elapsed: time.Second, P99: time.Millisecond}, mqtt, false},
		{"no mqtt figure", LoadResult{Ops: 2000, Elapsed: time.Second}, LoadResult{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := P2Row(tt.signed, tt.mqtt, 100)
			if r.Met != tt.met {
				t.Fatalf("met %v, want %v: %+v", r.Met, tt.met, r)
			}
			if r.ID != "P2" || r.Result != tt.signed.Rate() || r.Base != tt.mqtt.Rate() {
				t.Fatalf("row %+v", r)
			}
		})
	}
}

// TestRecordP2Short runs P2's comparison for real with a tiny MQTT load,
// against a stand-in for P1's result.
func TestRecordP2Short(t *testing.T) {
	signed := LoadResult{Ops: 10, Elapsed: time.Second, P50: time.Millisecond, P99: time.Hour}
	r := RecordP2(t, signed, 3, 200*time.Millisecond, "")
	if r.Base <= 0 || r.Met {
		t.Fatalf("P2 with a p99 of an hour: %+v", r)
	}
}
