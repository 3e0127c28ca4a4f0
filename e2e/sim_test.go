package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRunDevSim is `./run-dev.sh sim N` (issue 11, item 2): beside the dev
// stack, 20 simulated devices are preauthorised and accepted, online as
// the cloud sees them, answer system.info, show in status, and down stops
// them. A bad N is refused before anything starts.
func TestRunDevSim(t *testing.T) {
	s := StartStack(t, Options{})
	ctx := context.Background()
	for _, bad := range []string{"", "0", "x", "100001"} {
		if out, err := s.RunDev(ctx, "sim", bad); err == nil || !strings.Contains(out, "usage: ./run-dev.sh sim N") {
			t.Fatalf("./run-dev.sh sim %q: %v\n%s", bad, err, out)
		}
	}
	s.env = append(s.env, "BOSUN_SIM_DURATION=3m")
	out, err := s.RunDev(ctx, "sim", "20")
	if err != nil {
		t.Fatalf("./run-dev.sh sim 20: %v\n%s", err, out)
	}
	t.Logf("$ ./run-dev.sh sim 20\n%s", out)
	for i := 1; i <= 20; i++ {
		id := fmt.Sprintf("sim-%d", i)
		Eventually(t, 60*time.Second, id+" online", func() error {
			var d struct {
				Status string `json:"status"`
				Online bool   `json:"online"`
			}
			if err := s.CLIJSON(ctx, &d, "device", id); err != nil {
				return err
			}
			if d.Status != "accepted" || !d.Online {
				return fmt.Errorf("%+v", d)
			}
			return nil
		})
	}
	if out, err := s.CLI(ctx, "call", "sim-20", "system.info"); err != nil || !strings.Contains(out, "hostname") {
		t.Fatalf("system.info on sim-20: %v\n%s", err, out)
	}
	st, code := s.Status(t)
	if code != 0 || !strings.Contains(st, "sim ") {
		t.Fatalf("status (exit %d) does not show the simulator running:\n%s", code, st)
	}
	pid := s.Pid("sim")
	if out, err := s.RunDev(ctx, "down"); err != nil {
		t.Fatalf("./run-dev.sh down: %v\n%s", err, out)
	}
	if Alive(pid) {
		t.Fatalf("bosun-sim (pid %d) still runs after down", pid)
	}
}
