package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers for tests that run the stack's processes by hand, the way
// ./run-dev.sh does: each in its own process group, its pid in
// pids/NAME.pid (so ./run-dev.sh down stops it too), its output appended to
// logs/NAME.log.

// startProc starts bin with env in its own process group as NAME and
// stops it (TERM to the group) when the test ends, if it still runs.
func (s *Stack) startProc(t *testing.T, name string, env []string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.Dir, "logs", name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = s.Env(env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	logf.Close()
	if err := os.WriteFile(filepath.Join(s.Dir, "pids", name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	return cmd
}

// stopComponent stops a component run-dev.sh started (TERM to its process
// group) and waits until it is gone.
func (s *Stack) stopComponent(t *testing.T, name string) {
	t.Helper()
	pid := s.Pid(name)
	if !Alive(pid) {
		t.Fatalf("%s (pid %d) is not running", name, pid)
	}
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stopping %s: %v", name, err)
	}
	Eventually(t, 15*time.Second, name+" stopped", func() error {
		if Alive(pid) {
			return fmt.Errorf("pid %d still alive", pid)
		}
		return nil
	})
	os.Remove(filepath.Join(s.Dir, "pids", name+".pid"))
}

// bridgeEnv is the environment run-dev.sh starts the dev device's bridge
// with.
func (s *Stack) bridgeEnv(t *testing.T) []string {
	t.Helper()
	port, err := os.ReadFile(filepath.Join(s.Dir, s.Device+".nats-port"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"BOSUN_DEVICE_ID=" + s.Device,
		"BOSUN_DATA_DIR=" + filepath.Join(s.Dir, s.Device),
		"BOSUN_CLOUD_URL=ws://" + s.Listen + "/v1/device",
		"BOSUN_CLOUD_PUBLIC_KEY=" + filepath.Join(s.Keys, "device", "cloud_public.pem"),
		"BOSUN_NATS_LISTEN=127.0.0.1:" + strings.TrimSpace(string(port)),
	}
}

// deviceState is what `bosun device ID --json` says about being online.
type deviceState struct {
	Online  bool   `json:"online"`
	Replica string `json:"replica"`
}

// device reads the dev device through the CLI with the given environment
// entries (e.g. BOSUN_CONFIG of another replica).
func (s *Stack) device(ctx context.Context, env ...string) (deviceState, error) {
	var d deviceState
	out, err := s.cliEnv(ctx, env, "device", s.Device, "--json")
	if err != nil {
		return d, err
	}
	return d, json.Unmarshal([]byte(out), &d)
}

// cliEnv is CLI with extra environment entries.
func (s *Stack) cliEnv(ctx context.Context, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin("bosun"), args...)
	cmd.Env = s.Env(env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("bosun %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// acceptDevice waits for the dev device to register, accepts it and waits
// until system.info answers.
func (s *Stack) acceptDevice(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	Eventually(t, 30*time.Second, s.Device+" accepted", func() error {
		_, err := s.CLI(ctx, "accept", s.Device)
		return err
	})
	Eventually(t, 30*time.Second, "system.info answers", func() error {
		_, err := s.CLI(ctx, "call", s.Device, "system.info")
		return err
	})
}

// transcript runs the CLI as an operator would and logs the command and
// its output, for the record of a test run.
func (s *Stack) transcript(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, err := s.cliEnv(context.Background(), env, args...)
	if err != nil {
		out += err.Error() + "\n"
	}
	t.Logf("$ bosun %s\n%s", strings.Join(args, " "), out)
	return out
}
