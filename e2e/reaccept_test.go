package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rejectedRetry is the bridge's default reconnect interval while rejected
// (bridge.DefaultRejectedRetry; run-dev.sh does not set it).
const rejectedRetry = 10 * time.Second

// TestRejectAndAcceptBack runs the report's story against the real
// processes: dev-1 accepted, rejected with the CLI (its bridge is cut off
// and keeps being refused), then `bosun accept dev-1` again: the bridge,
// retrying at its fixed interval, is online within that interval (and a
// handshake) of the accept, and calls work again.
func TestRejectAndAcceptBack(t *testing.T) {
	s := StartStack(t, Options{})
	ctx := context.Background()
	type device struct {
		Status string `json:"status"`
		Online bool   `json:"online"`
	}
	state := func() (device, error) {
		var d device
		err := s.CLIJSON(ctx, &d, "device", s.Device)
		return d, err
	}
	want := func(what string, timeout time.Duration, status string, online bool) time.Duration {
		t.Helper()
		start := time.Now()
		Eventually(t, timeout, what, func() error {
			d, err := state()
			if err != nil {
				return err
			}
			if d.Status != status || d.Online != online {
				return fmt.Errorf("%s, online %v", d.Status, d.Online)
			}
			return nil
		})
		return time.Since(start)
	}
	want("dev-1 pending and online", 30*time.Second, "pending", true)
	if _, err := s.CLI(ctx, "accept", s.Device); err != nil {
		t.Fatal(err)
	}
	want("dev-1 accepted and online", 30*time.Second, "accepted", true)

	out, err := s.CLI(ctx, "reject", s.Device)
	if err != nil || !strings.HasPrefix(out, "rejected "+s.Device+" ") {
		t.Fatalf("reject: %v\n%s", err, out)
	}
	want("dev-1 rejected and offline", 15*time.Second, "rejected", false)
	// The bridge retries and is refused: at least two rejections in its log
	// (the session cut off, then a refused registration).
	log := filepath.Join(s.Dir, "logs", "bridge.log")
	Eventually(t, 2*rejectedRetry+5*time.Second, "a refused retry", func() error {
		data, err := os.ReadFile(log)
		if err != nil {
			return err
		}
		if n := strings.Count(string(data), "rejected=true"); n < 2 {
			return fmt.Errorf("%d rejections logged", n)
		}
		return nil
	})
	if _, err := s.CLI(ctx, "call", s.Device, "system.info"); err == nil {
		t.Fatal("a call to the rejected device succeeded")
	}

	// Accept it back: online within the retry interval and a handshake.
	out, err = s.CLI(ctx, "accept", s.Device)
	if err != nil || !strings.HasPrefix(out, "accepted "+s.Device+" ") {
		t.Fatalf("accept after reject: %v\n%s", err, out)
	}
	took := want("dev-1 online again", rejectedRetry+5*time.Second, "accepted", true)
	t.Logf("dev-1 was online %v after the accept (bound %v)", took.Round(100*time.Millisecond), rejectedRetry)
	Eventually(t, 20*time.Second, "system.info answers", func() error {
		_, err := s.CLI(ctx, "call", s.Device, "system.info")
		return err
	})
}
