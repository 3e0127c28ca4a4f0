// Package builtin holds the methods of bosun-worker, the worker every device
// runs: system.info, containers.list, containers.logs, logs.tail and
// state.get. They are plain handlers registered on a worker.Worker, so they
// can be tested without a bridge.
package builtin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/device/internal/docker"
	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Version is the built-in worker's version, reported by system.info.
var Version = "0.1.0-dev"

// Limits on what one answer carries: an answer travels in one envelope of
// at most 1 MiB.
const (
	defaultLines = 100
	maxLines     = 5000
	maxBytes     = 512 << 10
)

// Config tells the methods where things are.
type Config struct {
	// DataDir is the device's data directory (state.json, logs/).
	DataDir string
	// DockerHost is the engine address. Empty means docker.DefaultHost.
	DockerHost string
	// DiskPath is the file system system.info reports. Empty means "/".
	DiskPath string
	// Now is the clock. nil means time.Now.
	Now func() time.Time
}

// Methods serves the built-in methods.
type Methods struct {
	cfg    Config
	docker *docker.Client // nil when DockerHost is malformed
	dockEr error

	infoMu sync.Mutex // guards info and infoAt
	info   rpcproto.SystemInfoResult
	infoAt time.Time
}

// SystemInfoMaxAge is how old the figures system.info answers with may be:
// reading them (uname, /etc/os-release, /proc, statfs) costs more than the
// whole rest of a call, and a device asked a thousand times a second need
// not read them a thousand times.
const SystemInfoMaxAge = time.Second

// New returns the methods for cfg.
func New(cfg Config) *Methods {
	if cfg.DiskPath == "" {
		cfg.DiskPath = "/"
	}
	if cfg.DockerHost == "" {
		cfg.DockerHost = docker.DefaultHost
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Methods{cfg: cfg}
	m.docker, m.dockEr = docker.New(cfg.DockerHost)
	return m
}

// Close releases the engine client.
func (m *Methods) Close() {
	if m.docker != nil {
		m.docker.Close()
	}
}

// Registrar is what Register adds the methods to: a *worker.Worker, or in
// tests anything that keeps the handlers.
type Registrar interface {
	Handle(method, description string, h worker.HandlerFunc)
}

// Register adds every method to w. Each goes through worker.Func, so its
// params are decoded strictly: a member that is not exactly a field's name
// ({"Container":"x"}), an unknown one and a duplicated one ({"tail":1,
// "tail":2}) are -32602 Invalid params naming it, and the method does not
// run.
func (m *Methods) Register(w Registrar) {
	w.Handle(rpcproto.MethodSystemInfo, "Host name, OS, kernel, uptime, load, memory and disk", worker.Func(m.SystemInfo))
	w.Handle(rpcproto.MethodContainersList, "List containers (all: include stopped ones)", worker.Func(m.ContainersList))
	w.Handle(rpcproto.MethodContainersLogs, "A container's log lines (tail, since, timestamps)", worker.Func(m.ContainersLogs))
	w.Handle(rpcproto.MethodLogsTail, "The last lines of the device's own logs (file, lines, since)", worker.Func(m.LogsTail))
	w.Handle(rpcproto.MethodStateGet, "What the bridge last reported to the cloud", worker.Func(m.StateGet))
}

// SystemInfo answers system.info.
func (m *Methods) SystemInfo(ctx context.Context, _ struct{}) (rpcproto.SystemInfoResult, error) {
	now := m.cfg.Now()
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	if !m.infoAt.IsZero() && now.Sub(m.infoAt) >= 0 && now.Sub(m.infoAt) < SystemInfoMaxAge {
		return m.info, nil
	}
	r := rpcproto.SystemInfoResult{
		OS:       osPrettyName(),
		Arch:     runtime.GOARCH,
		Versions: map[string]string{"worker": Version, "go": runtime.Version()},
	}
	r.Hostname, _ = os.Hostname()
	fillSystem(&r, m.cfg.DiskPath)
	m.info, m.infoAt = r, now
	return r, nil
}

// osPrettyName returns PRETTY_NAME from /etc/os-release, or GOOS.
func osPrettyName() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return runtime.GOOS
}

// engineError turns a docker error into the JSON-RPC error to send.
func (m *Methods) engineError(err error) error {
	switch {
	case errors.Is(err, docker.ErrUnavailable):
		return &jsonrpc.Error{Code: rpcproto.CodeUnavailable,
			Message: fmt.Sprintf("unavailable: no container engine at %s (set DOCKER_HOST; Podman's Docker-compatible socket works too)", m.cfg.DockerHost)}
	case errors.Is(err, docker.ErrNotFound):
		return &jsonrpc.Error{Code: rpcproto.CodeNotFound, Message: "not found: " + err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &jsonrpc.Error{Code: rpcproto.CodeTimeout, Message: "timeout: the container engine did not answer in time"}
	}
	return err
}

func (m *Methods) client() (*docker.Client, error) {
	if m.docker == nil {
		return nil, &jsonrpc.Error{Code: rpcproto.CodeUnavailable, Message: "unavailable: " + m.dockEr.Error()}
	}
	return m.docker, nil
}

// ContainersList answers containers.list.
func (m *Methods) ContainersList(ctx context.Context, p rpcproto.ContainersListParams) (rpcproto.ContainersListResult, error) {
	c, err := m.client()
	if err != nil {
		return rpcproto.ContainersListResult{}, err
	}
	list, err := c.ListContainers(ctx, p.All)
	if err != nil {
		return rpcproto.ContainersListResult{}, m.engineError(err)
	}
	return rpcproto.ContainersListResult{Containers: list}, nil
}

// ContainersLogs answers containers.logs.
func (m *Methods) ContainersLogs(ctx context.Context, p rpcproto.ContainersLogsParams) (rpcproto.ContainersLogsResult, error) {
	if p.Container == "" {
		return rpcproto.ContainersLogsResult{}, invalidParams("container is required")
	}
	since, err := parseSince(p.Since, m.cfg.Now())
	if err != nil {
		return rpcproto.ContainersLogsResult{}, err
	}
	tail, err := lineCount(p.Tail)
	if err != nil {
		return rpcproto.ContainersLogsResult{}, err
	}
	c, err := m.client()
	if err != nil {
		return rpcproto.ContainersLogsResult{}, err
	}
	lines, err := c.Logs(ctx, p.Container, docker.LogsOptions{Tail: tail, Since: since, Timestamps: p.Timestamps, MaxBytes: maxBytes})
	if err != nil {
		return rpcproto.ContainersLogsResult{}, m.engineError(err)
	}
	if lines == nil {
		lines = []rpcproto.LogLine{}
	}
	return rpcproto.ContainersLogsResult{Lines: lines}, nil
}

// StateGet answers state.get with state.json as the bridge wrote it.
func (m *Methods) StateGet(ctx context.Context, _ struct{}) (datadir.State, error) {
	s, err := datadir.ReadState(m.cfg.DataDir)
	if errors.Is(err, os.ErrNotExist) {
		return s, &jsonrpc.Error{Code: rpcproto.CodeNotFound, Message: "not found: the bridge has not reported any state yet"}
	}
	return s, err
}

// logName is a log file's name without .log; longer names are not a log (and a
// file system refuses names past 255 bytes: -32603 instead of -32602).
var logName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// LogsTail answers logs.tail: the last lines of <data dir>/logs/*.log.
func (m *Methods) LogsTail(ctx context.Context, p rpcproto.LogsTailParams) (rpcproto.LogsTailResult, error) {
	n, err := lineCount(p.Lines)
	if err != nil {
		return rpcproto.LogsTailResult{}, err
	}
	if n == 0 {
		n = defaultLines
	}
	since, err := parseSince(p.Since, m.cfg.Now())
	if err != nil {
		return rpcproto.LogsTailResult{}, err
	}
	dir := filepath.Join(m.cfg.DataDir, datadir.LogsDir)
	var files []string
	if p.File != "" {
		name := strings.TrimSuffix(p.File, ".log")
		if !logName.MatchString(name) {
			return rpcproto.LogsTailResult{}, invalidParams("file: a log name such as \"bridge\" or \"worker\"")
		}
		files = []string{name}
	} else {
		matches, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, f := range matches {
			files = append(files, strings.TrimSuffix(filepath.Base(f), ".log"))
		}
		slices.Sort(files)
	}
	res := rpcproto.LogsTailResult{Lines: []rpcproto.FileLine{}}
	for _, name := range files {
		lines, err := tailFile(filepath.Join(dir, name+".log"), n, since, maxBytes/max(len(files), 1))
		if errors.Is(err, os.ErrNotExist) && p.File != "" {
			return res, &jsonrpc.Error{Code: rpcproto.CodeNotFound, Message: fmt.Sprintf("not found: no log %.40q", name)}
		}
		if err != nil {
			return res, err
		}
		for _, l := range lines {
			res.Lines = append(res.Lines, rpcproto.FileLine{File: name, Line: l})
		}
	}
	return res, nil
}

// tailFile returns the last n lines of path (reading at most the last
// budget*4 bytes) whose time is not before since. Lines carry their time as
// slog writes it: a leading time=<RFC 3339> (text) or "time":"..." (JSON);
// a line without one goes with the line before it.
func tailFile(path string, n int, since time.Time, budget int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	window := int64(budget) * 4
	off := max(st.Size()-window, 0)
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	text := string(data)
	if off > 0 {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:] // drop the partial first line
		}
	}
	all := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(all) == 1 && all[0] == "" {
		all = nil
	}
	var kept []string
	keep := since.IsZero()
	for _, l := range all {
		if !since.IsZero() {
			if t, ok := lineTime(l); ok {
				keep = !t.Before(since)
			}
		}
		if keep {
			kept = append(kept, l)
		}
	}
	if len(kept) > n {
		kept = kept[len(kept)-n:]
	}
	size := 0
	for i := len(kept) - 1; i >= 0; i-- {
		size += len(kept[i]) + 32
		if size > budget {
			kept = kept[i+1:]
			break
		}
	}
	return kept, nil
}

// lineTime finds the time of a log line written by slog.
func lineTime(l string) (time.Time, bool) {
	var v string
	if rest, ok := strings.CutPrefix(l, "time="); ok {
		v, _, _ = strings.Cut(rest, " ")
	} else if _, rest, ok := strings.Cut(l, `"time":"`); ok {
		v, _, _ = strings.Cut(rest, `"`)
	} else {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

// parseSince reads an RFC 3339 time or a Go duration ("10m": that long ago).
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, invalidParams(fmt.Sprintf("since %.40q: want an RFC 3339 time or a duration such as 10m", s))
}

func lineCount(n int) (int, error) {
	if n < 0 {
		return 0, invalidParams("line count must not be negative")
	}
	if n == 0 {
		return defaultLines, nil
	}
	return min(n, maxLines), nil
}

func invalidParams(detail string) *jsonrpc.Error {
	return jsonrpc.NewError(jsonrpc.CodeInvalidParams, "Invalid params", map[string]string{"detail": detail})
}
