// Package e2e tests Bosun the way a new user runs it: real processes started
// by ./run-dev.sh against a real PostgreSQL, a real container engine (Podman's
// Docker-compatible API) and, for the dashboard, a real Chromium.
//
// Each Stack runs in its own temporary directory (BOSUN_DEV_DIR), on its own
// port, with its own keys and its own database, so tests never touch the
// developer's .dev/ and can run next to a running dev stack.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names read by the harness; scripts/test.sh exports them.
const (
	EnvDatabaseURL = "BOSUN_TEST_DATABASE_URL"
	EnvDockerHost  = "BOSUN_TEST_DOCKER_HOST"
	EnvDemo        = "BOSUN_TEST_DEMO_CONTAINER"
	EnvChromium    = "BOSUN_TEST_CHROMIUM"
	EnvArtifacts   = "BOSUN_TEST_ARTIFACTS"
)

// Root is the repository root.
func Root(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("e2e: cannot find the source file")
	}
	return filepath.Dir(filepath.Dir(file))
}

// Require returns the value of env, skipping the test when it is unset, or
// failing it when CI=true: in CI every part must be there.
func Require(tb testing.TB, env, what string) string {
	tb.Helper()
	v := os.Getenv(env)
	if v == "" {
		msg := fmt.Sprintf("%s is not set: this test needs %s; run ./scripts/test.sh", env, what)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI=true: a missing part is a failure)")
		}
		tb.Skip(msg)
	}
	return v
}

// Stack is one dev stack started by ./run-dev.sh.
type Stack struct {
	Root     string // repository root
	Dir      string // BOSUN_DEV_DIR
	Keys     string // BOSUN_KEYS_DIR
	Listen   string // host:port of the cloud
	URL      string // http://Listen
	Database string // the stack's own database
	Device   string // the dev device's id
	Output   string // what the first ./run-dev.sh printed

	env []string
}

// Options tune StartStack. The zero value runs the dev device against the
// container engine named by BOSUN_TEST_DOCKER_HOST, if any.
type Options struct {
	// NeedEngine makes the test require BOSUN_TEST_DOCKER_HOST.
	NeedEngine bool
	// DeviceID is the dev device's id (BOSUN_DEV_DEVICE_ID). Empty means
	// run-dev.sh's default, dev-1.
	DeviceID string
	// DatabaseBase is the URL of the PostgreSQL cluster the stack's fresh
	// database is made in. Empty means BOSUN_TEST_DATABASE_URL's; a test
	// that stops its database (TestDatabaseStoppedAndStarted) gives a
	// cluster of its own.
	DatabaseBase string
}

// StartStack runs ./run-dev.sh in a fresh directory with a fresh database and
// registers ./run-dev.sh down as cleanup.
func StartStack(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	root := Root(tb)
	base := Require(tb, EnvDatabaseURL, "PostgreSQL")
	if opts.DatabaseBase != "" {
		base = opts.DatabaseBase
	}
	dir := tb.TempDir()
	s := &Stack{
		Root:     root,
		Dir:      filepath.Join(dir, "dev"),
		Keys:     filepath.Join(dir, "keys"),
		Listen:   "127.0.0.1:" + strconv.Itoa(FreePort(tb)),
		Database: FreshDatabase(tb, base),
		Device:   "dev-1",
	}
	if opts.DeviceID != "" {
		s.Device = opts.DeviceID
	}
	s.URL = "http://" + s.Listen
	s.env = append(os.Environ(),
		"BOSUN_DEV_DIR="+s.Dir,
		"BOSUN_KEYS_DIR="+s.Keys,
		"BOSUN_LISTEN="+s.Listen,
		"BOSUN_DATABASE_URL="+s.Database,
		"BOSUN_DEV_PODMAN=0",
		"BOSUN_CONFIG="+filepath.Join(s.Dir, "bosun.json"),
		"BOSUN_DEV_DEVICE_ID="+s.Device,
	)
	if host := os.Getenv(EnvDockerHost); host != "" {
		s.env = append(s.env, "DOCKER_HOST="+host)
	} else if opts.NeedEngine {
		Require(tb, EnvDockerHost, "a container engine (Podman)")
	}
	tb.Cleanup(func() {
		out, err := s.RunDev(context.Background(), "down")
		if err != nil {
			tb.Errorf("./run-dev.sh down: %v\n%s", err, out)
		}
		if tb.Failed() {
			s.dumpLogs(tb)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out, err := s.RunDev(ctx)
	s.Output = out
	if err != nil {
		tb.Fatalf("./run-dev.sh: %v\n%s", err, out)
	}
	return s
}

// RunDev runs ./run-dev.sh with args in the stack's environment.
func (s *Stack) RunDev(ctx context.Context, args ...string) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.Root, "run-dev.sh"), args...)
	cmd.Dir = s.Root
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Status runs ./run-dev.sh status and returns its output and exit status.
func (s *Stack) Status(tb testing.TB) (string, int) {
	tb.Helper()
	out, err := s.RunDev(context.Background(), "status")
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	tb.Fatalf("./run-dev.sh status: %v\n%s", err, out)
	return out, -1
}

// Bin returns the path of a binary run-dev.sh built.
func (s *Stack) Bin(name string) string { return filepath.Join(s.Dir, "bin", name) }

// Env returns the stack's environment with extra entries appended.
func (s *Stack) Env(extra ...string) []string {
	return append(append([]string(nil), s.env...), extra...)
}

// CLI runs the bosun CLI against the stack and returns stdout; stderr goes
// into the error.
func (s *Stack) CLI(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin("bosun"), args...)
	cmd.Env = s.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("bosun %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// CLIJSON runs the CLI with --json appended and decodes its output into v.
func (s *Stack) CLIJSON(ctx context.Context, v any, args ...string) error {
	out, err := s.CLI(ctx, append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("decoding output of bosun %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Credentials reads the first user's credentials run-dev.sh wrote.
func (s *Stack) Credentials(tb testing.TB) (email, password, token string) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(s.Dir, "credentials.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "email":
			email = v
		case "password":
			password = v
		case "api token":
			token = v
		}
	}
	if email == "" || password == "" || token == "" {
		tb.Fatalf("credentials file incomplete:\n%s", data)
	}
	return email, password, token
}

// Pid returns the pid run-dev.sh recorded for a component (cloud, bridge,
// worker), or 0.
func (s *Stack) Pid(name string) int {
	data, err := os.ReadFile(filepath.Join(s.Dir, "pids", name+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// Alive reports whether pid names a live process (not a zombie).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// Eventually polls cond every 100ms until it returns nil or the timeout
// passes, then fails the test with the last error.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		<-tick.C
	}
}

// Artifacts returns the directory for test artefacts (screenshots):
// $BOSUN_TEST_ARTIFACTS when set, else a temporary directory.
func Artifacts(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv(EnvArtifacts); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		return d
	}
	return tb.TempDir()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Stack) dumpLogs(tb testing.TB) {
	logs, _ := filepath.Glob(filepath.Join(s.Dir, "logs", "*.log"))
	for _, f := range logs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(data) > 8000 {
			data = data[len(data)-8000:]
		}
		tb.Logf("--- %s (tail) ---\n%s", filepath.Base(f), data)
	}
}

// freshDatabase creates a database in the cluster at base and drops it when
// the test ends.
func FreshDatabase(tb testing.TB, base string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parsing %s: %v", EnvDatabaseURL, err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "e2e_" + hex.EncodeToString(b[:])
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE DATABASE " + name); err != nil {
		tb.Fatalf("creating database: %v", err)
	}
	tb.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			tb.Errorf("dropping database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
