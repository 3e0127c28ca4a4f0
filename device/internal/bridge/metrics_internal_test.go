//go:build !race

package bridge

import (
	"testing"
	"time"
)

// TestServedAllocs: counting a call the bridge served allocates nothing,
// and a bridge without metrics (nil) pays a nil check only. (Without
// -race: the race detector allocates on its own.)
func TestServedAllocs(t *testing.T) {
	m := newMetrics(&Bridge{reg: newRegistry()})
	start := time.Now()
	for _, method := range []string{"system.info", "app.learned"} {
		status := callOK
		m.served(method, start, &status)
		if n := testing.AllocsPerRun(1000, func() { m.served(method, start, &status) }); n != 0 {
			t.Errorf("served(%s) allocates %v times per call", method, n)
		}
	}
	var none *metrics
	status := callOK
	if n := testing.AllocsPerRun(1000, func() { none.served("system.info", start, &status); none.connecting() }); n != 0 {
		t.Errorf("a nil metrics allocates %v times per call", n)
	}
}
