package docker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/internal/docker"
	"github.com/bosunhq/bosun/device/internal/testpodman"
)

// fakeEngine serves the few endpoints the client uses on a unix socket.
func fakeEngine(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "engine.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containers/json", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("all") == "1" {
			w.Write([]byte(`[{"Id":"aaa","Names":["/web"],"Image":"nginx","State":"running","Status":"Up","Created":1},{"Id":"bbb","Names":["/old"],"State":"exited"}]`))
			return
		}
		w.Write([]byte(`[{"Id":"aaa","Names":["/web"],"Image":"nginx","State":"running","Status":"Up","Created":1,"Labels":{"k":"v"}}]`))
	})
	mux.HandleFunc("GET /containers/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "web":
			w.Write([]byte(`{"Config":{"Tty":false}}`))
		case "tty":
			w.Write([]byte(`{"Config":{"Tty":true}}`))
		default:
			http.Error(w, `{"message":"no such container"}`, http.StatusNotFound)
		}
	})
	mux.HandleFunc("GET /containers/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("tail") != "2" || r.URL.Query().Get("stdout") != "1" {
			http.Error(w, "bad query "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		if r.PathValue("id") == "tty" {
			w.Write([]byte("tty one\r\ntty two\n"))
			return
		}
		for _, f := range []struct {
			s byte
			p string
		}{{1, "out\n"}, {2, "err\n"}} {
			h := []byte{f.s, 0, 0, 0, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(h[4:], uint32(len(f.p)))
			w.Write(append(h, f.p...))
		}
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

func TestClientFakeEngine(t *testing.T) {
	c, err := docker.New(fakeEngine(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	list, err := c.ListContainers(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "web" || list[0].Labels["k"] != "v" {
		t.Errorf("list = %+v", list)
	}
	all, err := c.ListContainers(ctx, true)
	if err != nil || len(all) != 2 {
		t.Errorf("list all = %+v, %v", all, err)
	}
	tests := []struct {
		name      string
		container string
		want      string
		wantErr   error
	}{
		{"multiplexed", "web", "stdout:out|stderr:err", nil},
		{"tty", "tty", "stdout:tty one|stdout:tty two", nil},
		{"no such container", "ghost", "", docker.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, err := c.Logs(ctx, tt.container, docker.LogsOptions{Tail: 2})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var got []string
			for _, l := range lines {
				got = append(got, l.Stream+":"+l.Line)
			}
			if s := strings.Join(got, "|"); s != tt.want {
				t.Errorf("got %q, want %q", s, tt.want)
			}
		})
	}
}

func TestClientNoEngine(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "missing.sock")
	c, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListContainers(context.Background(), false)
	if !errors.Is(err, docker.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), host) {
		t.Errorf("error %q does not name the socket %s", err, host)
	}
}

// TestClientRealEngine runs against the Podman (or Docker) socket named by
// BOSUN_TEST_DOCKER_HOST and its demo container.
func TestClientRealEngine(t *testing.T) {
	sock := testpodman.Socket(t)
	name := testpodman.DemoContainer()
	c, err := docker.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := c.ListContainers(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ct := range list {
		if ct.Name == name {
			found = true
			if ct.State != "running" {
				t.Errorf("demo container state %q", ct.State)
			}
		}
	}
	if !found {
		t.Fatalf("demo container %q not in %+v", name, list)
	}
	// The demo prints a line every 2s; wait until there is one.
	deadline := time.Now().Add(20 * time.Second)
	for {
		lines, err := c.Logs(ctx, name, docker.LogsOptions{Tail: 5, Timestamps: true})
		if err != nil {
			t.Fatal(err)
		}
		hello := 0
		for _, l := range lines {
			if strings.Contains(l.Line, "hello") {
				hello++
				if l.Stream != "stdout" {
					t.Errorf("line %q on %s", l.Line, l.Stream)
				}
			}
		}
		if hello > 0 {
			if len(lines) > 5 {
				t.Errorf("tail 5 gave %d lines", len(lines))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hello line in the demo's logs: %+v", lines)
		}
		tm := time.NewTimer(200 * time.Millisecond)
		<-tm.C
	}
}
