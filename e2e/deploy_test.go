package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// deployment is what GET /deployments/{id} answers, in part.
type deployment struct {
	ID      int64          `json:"id"`
	State   string         `json:"state"`
	Phase   int            `json:"phase"`
	Reason  string         `json:"reason"`
	Total   int            `json:"total"`
	Counts  map[string]int `json:"counts"`
	Members []struct {
		DeviceID string `json:"device_id"`
		Status   string `json:"status"`
		Reason   string `json:"reason"`
		Attempts int    `json:"attempts"`
	} `json:"members"`
}

func (d deployment) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deployment %d %s phase %d %q counts %v:", d.ID, d.State, d.Phase, d.Reason, d.Counts)
	for _, m := range d.Members {
		fmt.Fprintf(&b, " %s=%s(%d %q)", m.DeviceID, m.Status, m.Attempts, m.Reason)
	}
	return b.String()
}

// startOTADevice starts another device beside the stack's dev-1, made the
// way run-dev.sh makes dev-1: its bridge, bosun-ota with the run-slot hook,
// hello-worker from its factory slot, the stack's release root pinned.
func (s *Stack) startOTADevice(t *testing.T, id string) {
	t.Helper()
	dir := filepath.Join(s.Dir, id)
	ota := filepath.Join(dir, "ota")
	if err := os.MkdirAll(filepath.Join(ota, "slots", "a", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	hw, err := os.ReadFile(s.Bin("hello-worker"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ota, "slots", "a", "bin", "hello-worker"), hw, 0o755)
	os.WriteFile(filepath.Join(ota, "slots", "a", "run"), []byte("#!/bin/sh\nexec \"$(dirname \"$0\")/bin/hello-worker\"\n"), 0o755)
	root, err := os.ReadFile(filepath.Join(s.Keys, "release", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "release-root.json"), root, 0o600)
	s.startProc(t, id+"-bridge", []string{
		"BOSUN_DEVICE_ID=" + id,
		"BOSUN_DATA_DIR=" + dir,
		"BOSUN_CLOUD_URL=ws://" + s.Listen + "/v1/device",
		"BOSUN_CLOUD_PUBLIC_KEY=" + filepath.Join(s.Keys, "device", "cloud_public.pem"),
		"BOSUN_NATS_LISTEN=127.0.0.1:" + strconv.Itoa(FreePort(t)),
	}, s.Bin("bosun-bridge"))
	Eventually(t, 30*time.Second, id+"'s NATS", func() error {
		_, err := os.Stat(filepath.Join(dir, "nats.url"))
		return err
	})
	hook := filepath.Join(s.Root, "device", "examples", "ota-hook", "run-slot.sh")
	s.startProc(t, id+"-ota", []string{"BOSUN_DATA_DIR=" + dir, "BOSUN_OTA_HOOK=" + hook, "BOSUN_CLOUD_URL=ws://" + s.Listen + "/v1/device"}, s.Bin("bosun-ota"))
	Eventually(t, 30*time.Second, id+"'s OTA slots", func() error {
		_, err := os.Readlink(filepath.Join(ota, "current"))
		return err
	})
	cmd := exec.Command(hook, filepath.Join(ota, "current"))
	cmd.Env = s.Env("BOSUN_DATA_DIR="+dir, "BOSUN_OTA_DATA_DIR="+ota)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("starting %s's hello-worker: %v\n%s", id, err, out)
	}
	t.Cleanup(func() { stopApp(filepath.Join(ota, "app.pid")) })
}

// stopApp stops the program the run-slot hook started (pid file).
func stopApp(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// deploymentOf reads a deployment through the API.
func (s *Stack) deploymentOf(ctx context.Context, t *testing.T, id int64) deployment {
	t.Helper()
	var d deployment
	if err := s.API(ctx, t, "GET", "/deployments/"+strconv.FormatInt(id, 10), nil, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitDeployment polls until the deployment is in state, or fails.
func (s *Stack) waitDeployment(ctx context.Context, t *testing.T, id int64, state string, timeout time.Duration) deployment {
	t.Helper()
	var d deployment
	Eventually(t, timeout, fmt.Sprintf("deployment %d %s", id, state), func() error {
		d = s.deploymentOf(ctx, t, id)
		if d.State != state {
			return fmt.Errorf("%s", d)
		}
		return nil
	})
	return d
}

// events follows GET /events and records, per device, the statuses of
// deployment events, until ctx ends.
type eventLog struct {
	mu       sync.Mutex
	statuses map[string][]string
}

func (s *Stack) followDeploymentEvents(ctx context.Context, t *testing.T) *eventLog {
	t.Helper()
	_, _, token := s.Credentials(t)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /events: %s", resp.Status)
	}
	el := &eventLog{statuses: map[string][]string{}}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev struct {
				Type     string          `json:"type"`
				DeviceID string          `json:"device_id"`
				Data     json.RawMessage `json:"data"`
			}
			if json.Unmarshal([]byte(line), &ev) != nil || ev.Type != "deployment" || ev.DeviceID == "" {
				continue
			}
			var d struct {
				Status string `json:"status"`
			}
			json.Unmarshal(ev.Data, &d)
			el.mu.Lock()
			if st := el.statuses[ev.DeviceID]; d.Status != "" && (len(st) == 0 || st[len(st)-1] != d.Status) {
				el.statuses[ev.DeviceID] = append(st, d.Status)
			}
			el.mu.Unlock()
		}
	}()
	return el
}

func (el *eventLog) of(device string) []string {
	el.mu.Lock()
	defer el.mu.Unlock()
	return slices.Clone(el.statuses[device])
}

// makeBundle runs scripts/make-bundle.sh.
func (s *Stack) makeBundle(t *testing.T, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	cmd := exec.Command(filepath.Join(s.Root, "scripts", "make-bundle.sh"), append(args, out)...)
	cmd.Dir = s.Root
	cmd.Env = s.Env()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-bundle.sh %v: %v\n%s", args, err, b)
	}
	return out
}

// createDeployment posts a deployment and returns its id.
func (s *Stack) createDeployment(ctx context.Context, t *testing.T, spec map[string]any) int64 {
	t.Helper()
	b, _ := json.Marshal(spec)
	var d deployment
	if err := s.API(ctx, t, "POST", "/deployments", bytes.NewReader(b), &d); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// TestOTADeployments is issue 10's deployment tests with real processes:
// three real devices (bridge, bosun-ota, hello-worker run from its slot
// by the run-slot hook), a bundle built by scripts/make-bundle.sh, signed
// and uploaded by `bosun artifacts upload --release`.
//
//  1. v2 deployed to the three by tag in two phases: all succeed, each
//     device's statuses pass pending, sent, downloading, installing,
//     awaiting_commit, succeeded in that order, and the new method
//     hello.version answers 2.0.0.
//  2. A bundle that never commits: rolled back after its commit timeout,
//     and hello.version still answers 2.0.0.
//  3. The cloud killed (-9) in the middle of a deployment and started
//     again by ./run-dev.sh: the deployment continues and completes.
func TestOTADeployments(t *testing.T) {
	s := StartStack(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	devices := []string{s.Device, "dev-2", "dev-3"}
	s.startOTADevice(t, "dev-2")
	s.startOTADevice(t, "dev-3")
	for _, d := range devices {
		Eventually(t, 30*time.Second, d+" registered", func() error {
			_, err := s.CLI(ctx, "accept", d)
			return err
		})
		if _, err := s.CLI(ctx, "tag", d, "lab"); err != nil {
			t.Fatal(err)
		}
	}
	call := func(d, method string, params ...string) (string, error) {
		return s.CLI(ctx, append([]string{"call", d, method}, params...)...)
	}
	for _, d := range devices {
		Eventually(t, 30*time.Second, d+" serves ota and hello", func() error {
			out, err := call(d, "rpc.list")
			if err != nil {
				return err
			}
			if !strings.Contains(out, `"ota.update"`) || !strings.Contains(out, `"hello.greet"`) || strings.Contains(out, `"hello.version"`) {
				return fmt.Errorf("rpc.list:\n%s", out)
			}
			return nil
		})
	}
	release := filepath.Join(s.Keys, "release")
	upload := func(version string, flags ...string) {
		t.Helper()
		out, err := s.CLI(ctx, "artifacts", "upload", "hello", version, s.makeBundle(t, append(flags, version)...), "--release", release)
		if err != nil || !strings.Contains(out, "and published") {
			t.Fatalf("upload %s: %v\n%s", version, err, out)
		}
	}

	t.Run("three devices", func(t *testing.T) {
		upload("2.0.0")
		events := s.followDeploymentEvents(ctx, t)
		id := s.createDeployment(ctx, t, map[string]any{"name": "hello", "version": "2.0.0", "tag": "lab",
			"phases": []int{34, 100}, "max_in_flight": 2, "commit_timeout": 60})
		d := s.waitDeployment(ctx, t, id, "completed", 3*time.Minute)
		if d.Total != 3 || d.Counts["succeeded"] != 3 {
			t.Fatalf("%s", d)
		}
		want := []string{"pending", "sent", "downloading", "installing", "awaiting_commit", "succeeded"}
		for _, dev := range devices {
			Eventually(t, 10*time.Second, dev+"'s statuses", func() error {
				if got := events.of(dev); !slices.Equal(got, want) && !slices.Equal(got, want[1:]) {
					return fmt.Errorf("%s passed %v, want %v", dev, got, want)
				}
				return nil
			})
			out, err := call(dev, "hello.version")
			if err != nil || !strings.Contains(out, `"version": "2.0.0"`) {
				t.Fatalf("%s hello.version: %v\n%s", dev, err, out)
			}
			out, err = call(dev, "ota.get_boot_state")
			if err != nil || !strings.Contains(out, `"active_slot": "b"`) || !strings.Contains(out, `"is_committed": true`) {
				t.Fatalf("%s boot state: %v\n%s", dev, err, out)
			}
		}
	})

	t.Run("never commits", func(t *testing.T) {
		upload("3.0.0", "--no-commit")
		id := s.createDeployment(ctx, t, map[string]any{"name": "hello", "version": "3.0.0", "devices": []string{s.Device},
			"commit_timeout": 5, "max_attempts": 1})
		d := s.waitDeployment(ctx, t, id, "completed", 2*time.Minute)
		if len(d.Members) != 1 || d.Members[0].Status != "rolled_back" || !strings.Contains(d.Members[0].Reason, "commit_timeout") ||
			d.Reason != "phase 1: 1 of 1 devices failed (threshold 20%)" {
			t.Fatalf("%s", d)
		}
		out, err := call(s.Device, "hello.version")
		if err != nil || !strings.Contains(out, `"version": "2.0.0"`) {
			t.Fatalf("hello.version after the rollback: %v\n%s", err, out)
		}
		out, err = call(s.Device, "ota.get_boot_state")
		if err != nil || !strings.Contains(out, `"active_slot": "b"`) || !strings.Contains(out, `"is_committed": true`) {
			t.Fatalf("boot state after the rollback: %v\n%s", err, out)
		}
	})

	t.Run("cloud killed mid-deployment", func(t *testing.T) {
		upload("4.0.0")
		id := s.createDeployment(ctx, t, map[string]any{"name": "hello", "version": "4.0.0", "tag": "lab",
			"max_in_flight": 1, "commit_timeout": 60})
		Eventually(t, 2*time.Minute, "the first device updated", func() error {
			if d := s.deploymentOf(ctx, t, id); d.Counts["succeeded"] < 1 {
				return fmt.Errorf("%s", d)
			}
			return nil
		})
		pid := s.Pid("cloud")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 10*time.Second, "the cloud gone", func() error {
			if Alive(pid) {
				return fmt.Errorf("pid %d alive", pid)
			}
			return nil
		})
		if out, err := s.RunDev(ctx); err != nil {
			t.Fatalf("./run-dev.sh after the kill: %v\n%s", err, out)
		}
		d := s.waitDeployment(ctx, t, id, "completed", 3*time.Minute)
		if d.Counts["succeeded"] != 3 {
			t.Fatalf("after the restart: %s", d)
		}
		for _, dev := range devices {
			Eventually(t, 60*time.Second, dev+" back with 4.0.0", func() error {
				out, err := call(dev, "hello.version")
				if err != nil || !strings.Contains(out, `"version": "4.0.0"`) {
					return fmt.Errorf("%v\n%s", err, out)
				}
				return nil
			})
		}
	})
}
