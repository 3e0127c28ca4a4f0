package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Build compiles the named main packages of the workspace (paths relative
// to the repository root, e.g. "./device/cmd/bosun-bridge") into a fresh
// directory and returns it.
func Build(tb testing.TB, pkgs ...string) string {
	tb.Helper()
	bin := tb.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", bin + "/"}, pkgs...)...)
	cmd.Dir = Root(tb)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return bin
}

// Process is a program started by a test, with its output in a file.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // stdout and stderr

	done chan struct{}
}

// StartProcess starts bin with args in its own process group, with env
// (a complete environment; nil means the test's), writing its output to
// dir/name.log. Cleanup stops it with SIGTERM (SIGKILL after 10s) and, when
// the test failed, logs the tail of its output.
func StartProcess(tb testing.TB, dir, name string, env []string, bin string, args ...string) *Process {
	tb.Helper()
	p := &Process{Name: name, Log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.Log)
	if err != nil {
		tb.Fatal(err)
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = out, out
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		out.Close()
		tb.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.Cmd.Wait()
		out.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("--- %s output (tail) ---\n%s", name, tail(p.Output(), 8000))
		}
	})
	return p
}

// Stop ends the process (SIGTERM to its group, SIGKILL after 10s) and waits
// for it. Safe to call twice.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns what the process has written so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// GoEnv returns the value of a go env variable (GOMODCACHE, GOCACHE, ...).
func GoEnv(tb testing.TB, name string) string {
	tb.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		tb.Fatalf("go env %s: %v", name, err)
	}
	return string(bytes.TrimSpace(out))
}
