// Package docker is a small client for the Docker Engine API, enough to list
// containers and read their logs. It speaks HTTP over the engine's unix
// socket with net/http, so it needs no SDK and works with Podman's
// Docker-compatible socket too.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// DefaultHost is the engine address when DOCKER_HOST is not set.
const DefaultHost = "unix:///var/run/docker.sock"

var (
	// ErrUnavailable is wrapped by every error caused by not reaching the
	// engine (no socket, connection refused, ...).
	ErrUnavailable = errors.New("container engine unavailable")
	// ErrNotFound is wrapped when the engine knows no such container.
	ErrNotFound = errors.New("no such container")
)

// Client talks to one engine. It is safe for concurrent use.
type Client struct {
	host string // as given, e.g. unix:///run/podman/podman.sock
	base string // http://docker or http://host:port
	hc   *http.Client
}

// New returns a client for host: "unix:///path/to.sock" or "tcp://host:port".
// An empty host means DefaultHost. It does not connect.
func New(host string) (*Client, error) {
	if host == "" {
		host = DefaultHost
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	c := &Client{host: host}
	tr := &http.Transport{MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		if path == "" {
			return nil, fmt.Errorf("docker host %q: no socket path", host)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://docker"
	case "tcp", "http":
		c.base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("docker host %q: want unix:// or tcp://", host)
	}
	c.hc = &http.Client{Transport: tr}
	return c, nil
}

// Host returns the engine address the client uses.
func (c *Client) Host() string { return c.host }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v", ErrUnavailable, c.host, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, ErrNotFound
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct {
			Message string `json:"message"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("docker %s: %s: %s", path, resp.Status, e.Message)
	}
	return resp, nil
}

// ListContainers lists running containers, or all of them.
func (c *Client) ListContainers(ctx context.Context, all bool) ([]rpcproto.Container, error) {
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	resp, err := c.get(ctx, "/containers/json", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var raw []struct {
		ID      string            `json:"Id"`
		Names   []string          `json:"Names"`
		Image   string            `json:"Image"`
		State   string            `json:"State"`
		Status  string            `json:"Status"`
		Created int64             `json:"Created"`
		Labels  map[string]string `json:"Labels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return nil, fmt.Errorf("decoding container list: %w", err)
	}
	out := make([]rpcproto.Container, 0, len(raw))
	for _, r := range raw {
		name := ""
		if len(r.Names) > 0 {
			name = strings.TrimPrefix(r.Names[0], "/")
		}
		out = append(out, rpcproto.Container{ID: r.ID, Name: name, Image: r.Image, State: r.State,
			Status: r.Status, Created: r.Created, Labels: r.Labels})
	}
	return out, nil
}

// LogsOptions select log lines.
type LogsOptions struct {
	// Tail is the number of lines from the end. 0 means all.
	Tail int
	// Since drops lines older than this. Zero means no limit.
	Since time.Time
	// Timestamps prefixes each line with its RFC 3339 time.
	Timestamps bool
	// MaxBytes bounds the text kept; the oldest lines go first. 0 means
	// no bound.
	MaxBytes int
}

// Logs returns a container's log lines, stdout and stderr told apart, for
// TTY containers (raw stream: everything is stdout) as for the others
// (multiplexed stream).
func (c *Client) Logs(ctx context.Context, container string, o LogsOptions) ([]rpcproto.LogLine, error) {
	if container == "" || strings.ContainsAny(container, "/?#") {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, container)
	}
	// Inspect first: a TTY container's log stream has no frame headers.
	resp, err := c.get(ctx, "/containers/"+url.PathEscape(container)+"/json", nil)
	if err != nil {
		return nil, err
	}
	var insp struct {
		Config struct {
			Tty bool `json:"Tty"`
		} `json:"Config"`
	}
	err = json.NewDecoder(resp.Body).Decode(&insp)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("decoding container %s: %w", container, err)
	}
	q := url.Values{"stdout": {"1"}, "stderr": {"1"}}
	if o.Tail > 0 {
		q.Set("tail", strconv.Itoa(o.Tail))
	} else {
		q.Set("tail", "all")
	}
	if !o.Since.IsZero() {
		q.Set("since", strconv.FormatFloat(float64(o.Since.UnixNano())/1e9, 'f', 3, 64))
	}
	if o.Timestamps {
		q.Set("timestamps", "1")
	}
	resp, err = c.get(ctx, "/containers/"+url.PathEscape(container)+"/logs", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw := insp.Config.Tty
	switch resp.Header.Get("Content-Type") {
	case "application/vnd.docker.raw-stream":
		raw = true
	case "application/vnd.docker.multiplexed-stream":
		raw = false
	}
	lines := &lineRing{max: o.MaxBytes}
	if raw {
		err = SplitLines(resp.Body, func(l string) { lines.add(rpcproto.LogLine{Stream: "stdout", Line: l}) })
	} else {
		err = Demux(resp.Body, func(stream, l string) { lines.add(rpcproto.LogLine{Stream: stream, Line: l}) })
	}
	if err != nil {
		return nil, fmt.Errorf("reading logs of %s: %w", container, err)
	}
	return lines.lines, nil
}

// lineRing keeps the newest lines within max bytes.
type lineRing struct {
	max   int
	size  int
	lines []rpcproto.LogLine
}

func (r *lineRing) add(l rpcproto.LogLine) {
	r.lines = append(r.lines, l)
	r.size += len(l.Line) + 32
	for r.max > 0 && r.size > r.max && len(r.lines) > 1 {
		r.size -= len(r.lines[0].Line) + 32
		r.lines = r.lines[1:]
	}
}
