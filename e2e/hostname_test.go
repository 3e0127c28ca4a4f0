package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHostNameDevice: a real bridge whose device id is a host name,
// pi.kitchen.local, registers, is accepted through the CLI and answers a
// call served by the real worker.
func TestHostNameDevice(t *testing.T) {
	const id = "pi.kitchen.local"
	s := StartStack(t, Options{DeviceID: id})
	ctx := context.Background()
	if !strings.Contains(s.Output, "device:       "+id+" (pending until you accept it)\n") {
		t.Errorf("run-dev.sh output:\n%s", s.Output)
	}
	var dev struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := s.CLIJSON(ctx, &dev, "device", id); err != nil {
		t.Fatal(err)
	}
	if dev.ID != id || dev.Status != "pending" {
		t.Fatalf("device %+v, want %s pending", dev, id)
	}
	if out, err := s.CLI(ctx, "accept", id); err != nil || !strings.HasPrefix(out, "accepted "+id+" (SHA256:") {
		t.Fatalf("accept: %v\n%s", err, out)
	}
	Eventually(t, 30*time.Second, "system.info answers", func() error {
		out, err := s.CLI(ctx, "call", id, "system.info")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"hostname"`) {
			return fmt.Errorf("unexpected result:\n%s", out)
		}
		return nil
	})
}
