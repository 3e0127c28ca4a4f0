// Package testpodman points tests at a real Docker-API socket.
//
// scripts/test.sh starts `podman system service` and a demo container (see
// scripts/lib/podman-demo.sh) and names them in BOSUN_TEST_DOCKER_HOST and
// BOSUN_TEST_DEMO_CONTAINER. Without the socket the tests skip, except under
// CI=true, where a missing socket is a failure.
package testpodman

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Environment variables read by this package.
const (
	// EnvDockerHost is the Docker-API socket, as unix:///path/to/podman.sock.
	EnvDockerHost = "BOSUN_TEST_DOCKER_HOST"
	// EnvDemoContainer names the demo container. Defaults to "demo".
	EnvDemoContainer = "BOSUN_TEST_DEMO_CONTAINER"
)

// Socket returns the filesystem path of the Docker-API socket named by
// BOSUN_TEST_DOCKER_HOST. When it is unset the test is skipped, or fails when
// CI=true. A value that is not a unix:// URL of an existing socket is a failure.
func Socket(tb testing.TB) string {
	tb.Helper()
	host := os.Getenv(EnvDockerHost)
	if host == "" {
		msg := EnvDockerHost + " is not set: this test needs a Docker-API socket with the demo " +
			"container; run ./scripts/test.sh (it starts Podman), or see scripts/lib/podman-demo.sh"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI=true: a missing socket is a failure)")
		}
		tb.Skip(msg)
	}
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok || path == "" {
		tb.Fatalf("testpodman: %s=%q: want unix:///path/to/socket", EnvDockerHost, host)
	}
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatalf("testpodman: %s: %v", EnvDockerHost, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		tb.Fatalf("testpodman: %s: %s is not a socket", EnvDockerHost, path)
	}
	return path
}

// DemoContainer returns the name of the demo container that prints
// "hello from demo" every two seconds: BOSUN_TEST_DEMO_CONTAINER, or "demo".
func DemoContainer() string {
	if name := os.Getenv(EnvDemoContainer); name != "" {
		return name
	}
	return "demo"
}

// HTTPClient returns a client whose every request goes to the unix socket at
// path, whatever the URL's host (use http://docker/v1.41/...). Idle connections
// are closed when the test ends.
func HTTPClient(tb testing.TB, path string) *http.Client {
	tb.Helper()
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
