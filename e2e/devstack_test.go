package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevStack runs the platform as a new user would: ./run-dev.sh on a fresh
// database, the dev device pending, accepted through the CLI, calls through
// the cloud to real workers, a custom worker added, the bridge killed and
// brought back (status says it is down meanwhile, and the second
// ./run-dev.sh that the device is accepted), and ./run-dev.sh down leaving
// nothing behind.
func TestDevStack(t *testing.T) {
	s := StartStack(t, Options{})
	ctx := context.Background()

	for _, want := range []string{"credentials", "device:       dev-1 (pending until you accept it)\n", "bosun accept dev-1"} {
		if !strings.Contains(s.Output, want) {
			t.Errorf("run-dev.sh output lacks %q:\n%s", want, s.Output)
		}
	}
	expectStatus(t, s, 0, []string{"cloud", "bridge", "worker", "ota", "hello-worker"}, nil)

	// The dev device registers by itself and waits, pending.
	Eventually(t, 30*time.Second, "dev-1 pending", func() error {
		out, err := s.CLI(ctx, "devices", "--pending")
		if err != nil {
			return err
		}
		if !strings.Contains(out, s.Device) {
			return fmt.Errorf("not listed:\n%s", out)
		}
		return nil
	})
	// Nothing is accepted by itself: a call is refused.
	if out, err := s.CLI(ctx, "call", s.Device, "system.info"); err == nil {
		t.Fatalf("call to a pending device succeeded:\n%s", out)
	}

	if _, err := s.CLI(ctx, "accept", s.Device); err != nil {
		t.Fatal(err)
	}
	call := func(method string, params ...string) (string, error) {
		return s.CLI(ctx, append([]string{"call", s.Device, method}, params...)...)
	}
	Eventually(t, 30*time.Second, "system.info answers", func() error {
		out, err := call("system.info")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"hostname"`) || !strings.Contains(out, `"kernel"`) {
			return fmt.Errorf("unexpected result:\n%s", out)
		}
		return nil
	})
	out, err := call("rpc.list")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"system.info", "containers.list", "containers.logs", "logs.tail", "state.get"} {
		if !strings.Contains(out, `"`+m+`"`) {
			t.Errorf("rpc.list lacks %s:\n%s", m, out)
		}
	}

	t.Run("metrics", func(t *testing.T) {
		// ./run-dev.sh status says where the metrics are; both answer,
		// and show the calls just made.
		out, _ := s.Status(t)
		m := regexp.MustCompile(`(?m)^bridge-metrics +(http://127\.0\.0\.1:\d+/metrics) `).FindStringSubmatch(out)
		if m == nil || !regexp.MustCompile(`(?m)^cloud-metrics +http://`+regexp.QuoteMeta(s.Listen)+`/metrics `).MatchString(out) {
			t.Fatalf("status does not say where the metrics are:\n%s", out)
		}
		bridge := scrapeText(t, m[1], "")
		for _, want := range []string{`bosun_bridge_session_state{state="accepted"} 1`, `bosun_bridge_calls_total{method="system.info",status="ok"} `} {
			if !strings.Contains(bridge, want) {
				t.Errorf("the bridge's metrics lack %q", want)
			}
		}
		_, _, token := s.Credentials(t)
		cloud := scrapeText(t, s.URL+"/metrics", token)
		for _, want := range []string{`bosun_sessions{state="accepted"} `, `bosun_calls_total{method="system.info",status="succeeded"} `} {
			if !strings.Contains(cloud, want) {
				t.Errorf("the cloud's metrics lack %q", want)
			}
		}
	})

	t.Run("containers", func(t *testing.T) {
		Require(t, EnvDockerHost, "a container engine (Podman)")
		demo := Require(t, EnvDemo, "the demo container's name")
		out, err := call("containers.list")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, `"`+demo+`"`) {
			t.Fatalf("containers.list lacks %s:\n%s", demo, out)
		}
		Eventually(t, 20*time.Second, "demo logs", func() error {
			out, err := call("containers.logs", fmt.Sprintf(`{"container":%q,"tail":5}`, demo))
			if err != nil {
				return err
			}
			if !strings.Contains(out, "hello") {
				return fmt.Errorf("no hello line:\n%s", out)
			}
			return nil
		})
	})

	t.Run("hello-worker from its OTA slot", func(t *testing.T) {
		// run-dev.sh runs hello-worker from the device's OTA slot a
		// (the "factory" slot) through the OTA hook.
		Eventually(t, 20*time.Second, "hello.greet in rpc.list", func() error {
			out, err := call("rpc.list")
			if err != nil {
				return err
			}
			if !strings.Contains(out, `"hello.greet"`) || !strings.Contains(out, `"ota.update"`) {
				return fmt.Errorf("not yet:\n%s", out)
			}
			if strings.Contains(out, `"hello.version"`) {
				return fmt.Errorf("the factory hello-worker serves hello.version:\n%s", out)
			}
			return nil
		})
		out, err := call("hello.greet", `{"name":"Ada"}`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "hello, Ada") {
			t.Fatalf("hello.greet answered:\n%s", out)
		}
		out, err = call("ota.get_boot_state")
		if err != nil || !strings.Contains(out, `"active_slot": "a"`) || !strings.Contains(out, `"is_committed": true`) {
			t.Fatalf("ota.get_boot_state: %v\n%s", err, out)
		}
		if out, _ := expectStatus(t, s, 0, []string{"cloud", "bridge", "worker", "ota", "hello-worker"}, nil); !strings.Contains(out, "from OTA slot slots/a") {
			t.Errorf("status does not say hello-worker runs from slot a:\n%s", out)
		}
	})

	t.Run("bridge restart", func(t *testing.T) {
		old := s.Pid("bridge")
		if !Alive(old) {
			t.Fatalf("bridge pid %d not alive", old)
		}
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 10*time.Second, "bridge gone", func() error {
			if Alive(old) {
				return fmt.Errorf("pid %d still alive", old)
			}
			return nil
		})
		// Calls fail while the device is away ...
		Eventually(t, 30*time.Second, "device seen offline", func() error {
			if out, err := call("system.info", "--timeout", "2s"); err == nil {
				return fmt.Errorf("call still succeeds:\n%s", out)
			}
			return nil
		})
		// ... status says so, and fails ...
		expectStatus(t, s, 1, []string{"cloud", "worker"}, []string{"bridge"})
		// ... and run-dev.sh, run again, restarts only what is missing and
		// knows the device is accepted.
		out, err := s.RunDev(ctx)
		if err != nil {
			t.Fatalf("second ./run-dev.sh: %v\n%s", err, out)
		}
		t.Logf("second ./run-dev.sh:\n%s", out)
		if !strings.Contains(out, "cloud already running") {
			t.Errorf("second run-dev.sh restarted the cloud:\n%s", out)
		}
		if !strings.Contains(out, "device:       dev-1 (accepted)\n") || strings.Contains(out, "pending") || strings.Contains(out, "bosun accept") {
			t.Errorf("second run-dev.sh does not say dev-1 is accepted:\n%s", out)
		}
		if s.Pid("bridge") == old {
			t.Fatal("bridge pid unchanged")
		}
		expectStatus(t, s, 0, []string{"cloud", "bridge", "worker"}, nil)
		Eventually(t, 30*time.Second, "calls work after reconnect", func() error {
			_, err := call("system.info")
			return err
		})
	})

	t.Run("worker down", func(t *testing.T) {
		pid := s.Pid("worker")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 10*time.Second, "worker gone", func() error {
			if Alive(pid) {
				return fmt.Errorf("pid %d still alive", pid)
			}
			return nil
		})
		out, _ := expectStatus(t, s, 1, []string{"cloud", "bridge"}, []string{"worker"})
		t.Logf("./run-dev.sh status with the worker down:\n%s", out)
		if out, err := s.RunDev(ctx); err != nil {
			t.Fatalf("./run-dev.sh: %v\n%s", err, out)
		}
		expectStatus(t, s, 0, []string{"cloud", "bridge", "worker"}, nil)
	})

	// down stops every process it started.
	pids := map[string]int{}
	for _, n := range []string{"cloud", "bridge", "worker", "ota"} {
		pids[n] = s.Pid(n)
		if !Alive(pids[n]) {
			t.Errorf("%s (pid %d) not running before down", n, pids[n])
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir, s.Device, "ota", "app.pid")); err != nil {
		t.Errorf("no pid file of hello-worker: %v", err)
	} else {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		pids["hello-worker"] = pid
	}
	if out, err := s.RunDev(ctx, "down"); err != nil {
		t.Fatalf("./run-dev.sh down: %v\n%s", err, out)
	}
	for n, pid := range pids {
		if Alive(pid) {
			t.Errorf("%s (pid %d) still running after down", n, pid)
		}
	}
	out, code := s.Status(t)
	if code != 3 || strings.Contains(out, "running (") || !strings.Contains(out, "nothing started by run-dev.sh runs") {
		t.Errorf("status after down: exit %d\n%s", code, out)
	}
}

// expectStatus runs ./run-dev.sh status and checks its exit status and that
// it reports each of up running and each of down DOWN.
func expectStatus(t *testing.T, s *Stack, code int, up, down []string) (string, int) {
	t.Helper()
	out, got := s.Status(t)
	if got != code {
		t.Errorf("./run-dev.sh status: exit %d, want %d\n%s", got, code, out)
	}
	for _, n := range up {
		if !regexp.MustCompile(`(?m)^` + n + ` +running \(pid \d+(\)|, from OTA slot slots/[ab]\))$`).MatchString(out) {
			t.Errorf("./run-dev.sh status: %s not running:\n%s", n, out)
		}
	}
	for _, n := range down {
		if !regexp.MustCompile(`(?m)^` + n + ` +DOWN \(pid \d+ is gone; see .*/logs/` + n + `\.log\)$`).MatchString(out) {
			t.Errorf("./run-dev.sh status: %s not reported down:\n%s", n, out)
		}
	}
	return out, got
}

// scrapeText GETs a /metrics page (with a bearer token unless it is "").
func scrapeText(t *testing.T, url, token string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v: %.300s", url, resp.StatusCode, err, body)
	}
	return string(body)
}
