package perf

import (
	"os"
	"strconv"
	"testing"
)

// BenchmarkFleet records P3, P4 and P5 of issue 11 with 20,000 simulated
// devices (fewer when RLIMIT_NOFILE does not allow that many sockets per
// process: the row says how many) and a fan-out to 10,000.
// BOSUN_FLEET_DEVICES sets a smaller fleet.
func BenchmarkFleet(b *testing.B) {
	n := min(20_000, FleetLimit())
	if v, err := strconv.Atoi(os.Getenv("BOSUN_FLEET_DEVICES")); err == nil && v > 0 {
		n = min(v, FleetLimit()) // a smaller run while working on the cloud
	}
	RunFleet(b, FleetSizes{Devices: n, FanOut: min(10_000, n)})
}

// TestFleetFiguresShort is the short form of P3, P4 and P5: 50 devices,
// every one accepted, back after a cloud restart, and every fan-out call
// answered.
func TestFleetFiguresShort(t *testing.T) {
	RunFleet(t, FleetSizes{Devices: 50, FanOut: 50, Short: true})
}
