package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// call is what `bosun call|calls ... --json` prints of a call.
type call struct {
	ID     string          `json:"id"`
	Method string          `json:"method"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// TestQueuedCallsReachLateWorkers is item 1 of issue 9 as it was observed,
// with the real processes: calls queued with a ttl while dev-1 is offline,
// then the bridge back and its worker started 1.5 s after the bridge's
// session is up (as run-dev.sh starts it, late). They used to be sent at
// once and end -32601 for good; now each is sent once the device lists its
// method, and one whose worker never started waits without holding up the
// others.
func TestQueuedCallsReachLateWorkers(t *testing.T) {
	s := StartStack(t, Options{})
	ctx := context.Background()
	s.acceptDevice(t)
	// run-dev.sh runs hello-worker from the OTA slot: this test starts
	// its own, late.
	s.stopComponent(t, "ota")
	stopApp(filepath.Join(s.Dir, s.Device, "ota", "app.pid"))
	s.stopComponent(t, "worker")
	s.stopComponent(t, "bridge")
	Eventually(t, 15*time.Second, s.Device+" offline", func() error {
		d, err := s.device(ctx)
		if err != nil || d.Online {
			return fmt.Errorf("online %v, %v", d.Online, err)
		}
		return nil
	})

	out := s.transcript(t, nil, "call", s.Device, "system.info", "--ttl", "1h")
	if !strings.HasPrefix(out, "device offline: call ") || !strings.Contains(out, " queued, expires ") {
		t.Fatalf("queueing system.info:\n%s", out)
	}
	var sys, greet call
	if err := s.CLIJSON(ctx, &sys, "call", s.Device, "system.info", "--ttl", "1h"); err != nil || sys.Status != "queued" {
		t.Fatalf("second system.info: %+v, %v", sys, err)
	}
	if err := s.CLIJSON(ctx, &greet, "call", s.Device, "hello.greet", `{"name":"Ada"}`, "--ttl", "1h"); err != nil || greet.Status != "queued" {
		t.Fatalf("hello.greet: %+v, %v", greet, err)
	}

	// The bridge comes back, alone.
	s.startProc(t, "bridge", s.bridgeEnv(t), s.Bin("bosun-bridge"))
	Eventually(t, 30*time.Second, s.Device+" online again", func() error {
		d, err := s.device(ctx)
		if err != nil || !d.Online {
			return fmt.Errorf("online %v, %v", d.Online, err)
		}
		return nil
	})
	// The worker starts 1.5 s later (the scenario, not a synchronisation).
	time.Sleep(1500 * time.Millisecond)
	for _, c := range []call{sys, greet} {
		var got call
		if err := s.CLIJSON(ctx, &got, "calls", c.ID); err != nil || got.Status != "queued" {
			t.Fatalf("%s before its worker started: %+v, %v; want still queued", c.Method, got, err)
		}
	}
	s.startProc(t, "worker", []string{"BOSUN_DATA_DIR=" + s.Dir + "/" + s.Device}, s.Bin("bosun-worker"))

	Eventually(t, 30*time.Second, "queued system.info succeeded", func() error {
		var got call
		if err := s.CLIJSON(ctx, &got, "calls", sys.ID); err != nil {
			return err
		}
		if got.Status != "succeeded" || !strings.Contains(string(got.Result), `"kernel"`) {
			if got.Status == "failed" || got.Status == "expired" {
				t.Fatalf("queued system.info ended %s: %+v", got.Status, got.Error)
			}
			return fmt.Errorf("status %s", got.Status)
		}
		return nil
	})
	// hello.greet's worker never started: it waits, saying why, and did
	// not hold system.info up.
	var got call
	if err := s.CLIJSON(ctx, &got, "calls", greet.ID); err != nil || got.Status != "queued" || got.Error == nil || got.Error.Code != -32601 {
		t.Fatalf("hello.greet without its worker: %+v, %v", got, err)
	}
	s.transcript(t, nil, "calls", "--device", s.Device, "--limit", "4")
	out = s.transcript(t, nil, "call", s.Device, "hello.greet", `{"name":"Bob"}`, "--ttl", "1h")
	if !strings.HasPrefix(out, "device does not serve hello.greet yet (-32601 Method not found): call ") {
		t.Fatalf("a ttl call for a method the online device does not serve:\n%s", out)
	}

	s.startProc(t, "hello-worker", []string{"BOSUN_DATA_DIR=" + s.Dir + "/" + s.Device}, s.Bin("hello-worker"))
	Eventually(t, 30*time.Second, "queued hello.greet succeeded", func() error {
		var got call
		if err := s.CLIJSON(ctx, &got, "calls", greet.ID); err != nil {
			return err
		}
		if got.Status != "succeeded" || !strings.Contains(string(got.Result), "hello, Ada") {
			return fmt.Errorf("status %s", got.Status)
		}
		return nil
	})
	s.transcript(t, nil, "calls", greet.ID)
	s.transcript(t, nil, "calls", "--device", s.Device, "--limit", "5")
}
