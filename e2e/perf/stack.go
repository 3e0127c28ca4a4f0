package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
)

// The binaries the figures start, built once per test binary (go build's
// cache makes a rebuild cheap, but not free on 2 cores).
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Bin returns the path of one of the binaries the figures use
// (bosun-cloud, bosun, bosun-sim, bosun-bridge, bosun-worker), building
// them all on first use.
func Bin(tb testing.TB, name string) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bosun-perf-bin-")
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cloud/cmd/bosun-cloud", "./cloud/cmd/bosun",
			"./device/cmd/bosun-sim", "./device/cmd/bosun-bridge", "./device/cmd/bosun-worker")
		cmd.Dir = e2e.Root(tb)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		buildDir = dir
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

// CloudOptions tune StartCloud. The zero value is one cloud with the
// defaults of bosun-cloud serve.
type CloudOptions struct {
	// Env is added to bosun-cloud serve's environment (BOSUN_MAX_PENDING=...).
	Env []string
}

// Cloud is one bosun-cloud process on a database of its own, with a super
// user's API token.
type Cloud struct {
	URL         string // http://127.0.0.1:PORT
	DeviceURL   string // ws://127.0.0.1:PORT/v1/device
	Listen      string // 127.0.0.1:PORT
	Token       string // API token of the super user
	DatabaseURL string
	Dir         string // the cloud's own files: keys/, data/, cloud.log
	CloudPublic string // the cloud's public key for devices (PEM)
	Config      string // a bosun CLI config file {"url","token"}

	tb   testing.TB
	env  []string
	opts CloudOptions
	mu   sync.Mutex // guards proc
	proc *e2e.Process
	runs int
}

// StartCloud migrates a fresh database, creates a super user and an API
// token, and starts bosun-cloud serve on a free loopback port. Cleanup
// stops it and drops the database.
func StartCloud(tb testing.TB, opts CloudOptions) *Cloud {
	tb.Helper()
	base := e2e.Require(tb, e2e.EnvDatabaseURL, "PostgreSQL")
	dir := tb.TempDir()
	c := &Cloud{tb: tb, Dir: dir, opts: opts, DatabaseURL: e2e.FreshDatabase(tb, base)}
	c.Listen = "127.0.0.1:" + strconv.Itoa(e2e.FreePort(tb))
	c.URL = "http://" + c.Listen
	c.DeviceURL = "ws://" + c.Listen + "/v1/device"
	keysDir := filepath.Join(dir, "keys")
	c.CloudPublic = filepath.Join(keysDir, "device", "cloud_public.pem")
	c.env = append(os.Environ(),
		"BOSUN_DATABASE_URL="+c.DatabaseURL,
		"BOSUN_LISTEN="+c.Listen,
		"BOSUN_PUBLIC_URL="+c.URL,
		"BOSUN_CLOUD_KEY="+filepath.Join(keysDir, "cloud_private.pem"),
		"BOSUN_DATA_DIR="+filepath.Join(dir, "data"),
	)
	c.env = append(c.env, opts.Env...)
	bin := Bin(tb, "bosun-cloud")
	c.cmd(tb, bin, "keys", "ensure", "--dir", keysDir)
	c.cmd(tb, bin, "migrate")
	c.cmd(tb, bin, "user", "add", "--super", "--quiet", "perf@bosun.local")
	c.Token = strings.TrimSpace(c.cmd(tb, bin, "token", "create", "--user", "perf@bosun.local", "--name", "perf"))
	c.Config = filepath.Join(dir, "bosun.json")
	cfg, _ := json.Marshal(map[string]string{"url": c.URL, "token": c.Token})
	if err := os.WriteFile(c.Config, cfg, 0o600); err != nil {
		tb.Fatal(err)
	}
	c.Start(tb)
	return c
}

func (c *Cloud) cmd(tb testing.TB, bin string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// Start starts bosun-cloud serve (again, after Kill or Stop) and waits
// until /healthz answers. It returns when the cloud serves.
func (c *Cloud) Start(tb testing.TB) {
	tb.Helper()
	c.mu.Lock()
	c.runs++
	name := "cloud"
	if c.runs > 1 {
		name = fmt.Sprintf("cloud-%d", c.runs)
	}
	c.proc = e2e.StartProcess(tb, c.Dir, name, c.env, Bin(tb, "bosun-cloud"), "serve")
	p := c.proc
	c.mu.Unlock()
	e2e.Eventually(tb, 60*time.Second, "bosun-cloud serving", func() error {
		if p.Exited() {
			tb.Fatalf("bosun-cloud exited:\n%s", p.Output())
		}
		resp, err := http.Get(c.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
}

// Pid returns the running cloud's pid.
func (c *Cloud) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc.Cmd.Process.Pid
}

// Process returns the running cloud process.
func (c *Cloud) Process() *e2e.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc
}

// Stop stops the cloud with SIGTERM and waits for it.
func (c *Cloud) Stop() { c.Process().Stop() }

// Kill kills the cloud with SIGKILL and waits until it is gone.
func (c *Cloud) Kill(tb testing.TB) {
	tb.Helper()
	p := c.Process()
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	e2e.Eventually(tb, 10*time.Second, "bosun-cloud killed", func() error {
		if !p.Exited() {
			return fmt.Errorf("pid %d still runs", p.Cmd.Process.Pid)
		}
		return nil
	})
}

// Restart kills the cloud and starts it again.
func (c *Cloud) Restart(tb testing.TB) {
	tb.Helper()
	c.Kill(tb)
	c.Start(tb)
}

// RSS returns the cloud's resident set size in bytes (VmRSS of
// /proc/PID/status).
func (c *Cloud) RSS(tb testing.TB) int64 {
	tb.Helper()
	return RSS(tb, c.Pid())
}

// RSS returns pid's resident set size in bytes.
func RSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// CLI runs the bosun CLI against the cloud and returns its stdout.
func (c *Cloud) CLI(tb testing.TB, args ...string) string {
	tb.Helper()
	return c.cmd(tb, Bin(tb, "bosun"), append([]string{"--config", c.Config}, args...)...)
}

// API sends an API request (path under /api/v1) with the token and
// decodes a 2xx JSON answer into out (unless nil).
func (c *Cloud) API(ctx context.Context, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+"/api/v1"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(buf.String()))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(buf.Bytes(), out)
}
