package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

const testSecret = "0123456789abcdef" // MinClusterSecret bytes: accepted

func open(t *testing.T, opts Options) *Bus {
	t.Helper()
	b, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open(%+v): %v", opts.Cluster, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Close(ctx)
		b.Close(ctx) // safe twice
	})
	return b
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func member(name string, routes ...string) Options {
	return Options{ServerName: name, Cluster: &Cluster{Listen: "127.0.0.1:0", Routes: routes, Secret: testSecret},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestClusterRoutes joins three embedded servers: C routes only to B and B
// only to A, yet every one learns the others (gossip), and a message
// published on any reaches a subscriber on every other.
func TestClusterRoutes(t *testing.T) {
	a := open(t, member("replica a"))
	if a.ClusterURL() == "" || !strings.HasPrefix(a.ClusterURL(), "nats-route://127.0.0.1:") {
		t.Fatalf("ClusterURL %q", a.ClusterURL())
	}
	b := open(t, member("replica-b", a.ClusterURL()))
	c := open(t, member("replica-c", strings.TrimPrefix(b.ClusterURL(), "nats-route://")))
	all := []*Bus{a, b, c}
	eventually(t, 10*time.Second, "full mesh", func() error {
		for i, x := range all {
			if n := x.Routes(); n != 2 {
				return fmt.Errorf("member %d has routes to %d others, want 2", i, n)
			}
		}
		return nil
	})
	for i, sub := range all {
		s, err := sub.Conn().SubscribeSync("t.x")
		if err != nil {
			t.Fatal(err)
		}
		sub.Conn().Flush()
		for j, pub := range all {
			if i == j {
				continue
			}
			// Interest reaches the other servers asynchronously: publish
			// until the first message arrives, then drain the extras.
			eventually(t, 5*time.Second, fmt.Sprintf("%d → %d", j, i), func() error {
				want := fmt.Sprintf("from %d", j)
				if err := pub.Conn().Publish("t.x", []byte(want)); err != nil {
					return err
				}
				for {
					m, err := s.NextMsg(50 * time.Millisecond)
					if err != nil {
						return err
					}
					if string(m.Data) == want {
						return nil
					}
				}
			})
		}
		s.Unsubscribe()
	}
	// Request-reply crosses too: the responder on C, the requester on A.
	if _, err := c.Conn().Subscribe("t.echo", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	c.Conn().Flush()
	eventually(t, 5*time.Second, "request A → C", func() error {
		r, err := a.Conn().Request("t.echo", []byte("ping"), 500*time.Millisecond)
		if err != nil {
			return err
		}
		if string(r.Data) != "ping" {
			return fmt.Errorf("reply %q", r.Data)
		}
		return nil
	})
}

// TestClusterWrongSecret: a server with another secret is refused by the
// members and never joins, and the members keep their routes.
func TestClusterWrongSecret(t *testing.T) {
	var logs syncBuffer
	ma := member("a")
	ma.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a := open(t, ma)
	b := open(t, member("b", a.ClusterURL()))
	eventually(t, 10*time.Second, "a and b joined", func() error {
		if a.Routes() != 1 || b.Routes() != 1 {
			return fmt.Errorf("routes %d, %d", a.Routes(), b.Routes())
		}
		return nil
	})
	bad := member("intruder", a.ClusterURL(), b.ClusterURL())
	bad.Cluster.Secret = "fedcba9876543210"
	x := open(t, bad)
	s, err := a.Conn().SubscribeSync("t.secret")
	if err != nil {
		t.Fatal(err)
	}
	a.Conn().Flush()
	// Give the intruder several route attempts (one a second).
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		x.Conn().Publish("t.secret", []byte("leak"))
		if m, err := s.NextMsg(100 * time.Millisecond); err == nil {
			t.Fatalf("a received %q from a server with the wrong secret", m.Data)
		}
	}
	if n := x.Routes(); n != 0 {
		t.Fatalf("the intruder has %d routes", n)
	}
	if a.Routes() != 1 || b.Routes() != 1 {
		t.Fatalf("after the intruder: routes %d, %d; want 1, 1", a.Routes(), b.Routes())
	}
	// The refusal is in a's log, as an error, without the secrets.
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "component=nats") ||
		!strings.Contains(out, "authentication error") {
		t.Errorf("a's log does not say it refused a route:\n%s", out)
	}
	if strings.Contains(out, testSecret) || strings.Contains(out, "fedcba9876543210") {
		t.Errorf("a's log shows a secret:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestClusterConfigRefused: every bad configuration is a clear error
// wrapping ErrClusterConfig, and nothing is left listening.
func TestClusterConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no secret", Options{Cluster: &Cluster{Listen: "127.0.0.1:0"}}, "route secret has 0 bytes"},
		{"secret one byte short", Options{Cluster: &Cluster{Listen: "127.0.0.1:0", Secret: testSecret[:MinClusterSecret-1]}}, "want at least 16"},
		{"no listen", Options{Cluster: &Cluster{Secret: testSecret}}, "listen address is required"},
		{"bad listen", Options{Cluster: &Cluster{Listen: "127.0.0.1", Secret: testSecret}}, "cluster listen address"},
		{"port beyond range", Options{Cluster: &Cluster{Listen: "127.0.0.1:65536", Secret: testSecret}}, "0 to 65535"},
		{"bad advertise", Options{Cluster: &Cluster{Listen: "127.0.0.1:0", Advertise: "x", Secret: testSecret}}, "advertise"},
		{"secret in a route", Options{Cluster: &Cluster{Listen: "127.0.0.1:0", Secret: testSecret,
			Routes: []string{"nats-route://u:hunter2@127.0.0.1:6222"}}}, "carries credentials"},
		{"route scheme", Options{Cluster: &Cluster{Listen: "127.0.0.1:0", Secret: testSecret,
			Routes: []string{"http://127.0.0.1:6222"}}}, "want nats-route://host:port"},
		{"route without port", Options{Cluster: &Cluster{Listen: "127.0.0.1:0", Secret: testSecret,
			Routes: []string{"nats-route://127.0.0.1"}}}, "want nats-route://host:port"},
		{"external and cluster", Options{URL: "nats://127.0.0.1:4222", Cluster: &Cluster{Listen: "127.0.0.1:0", Secret: testSecret}}, "exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Open(context.Background(), tc.opts)
			if err == nil {
				b.Close(context.Background())
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrClusterConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want ErrClusterConfig containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

// TestExternalCluster: replicas pointed at an external cluster (here two
// clustered servers, each seen as external through its client URL, the
// list comma-separated) reach each other, and a replica whose first
// server is gone connects to the next.
func TestExternalCluster(t *testing.T) {
	a := open(t, member("ext-a"))
	b := open(t, member("ext-b", a.ClusterURL()))
	eventually(t, 10*time.Second, "joined", func() error {
		if a.Routes() != 1 {
			return fmt.Errorf("routes %d", a.Routes())
		}
		return nil
	})
	dead := "nats://127.0.0.1:1" // nothing listens on port 1
	r1 := open(t, Options{URL: dead + "," + a.URL()})
	r2 := open(t, Options{URL: b.URL()})
	if r1.Embedded() || r1.ClusterURL() != "" || r1.Routes() != 0 {
		t.Fatal("an external bus reports an embedded server")
	}
	if _, err := r2.Conn().Subscribe("t.ext", func(m *nats.Msg) { m.Respond([]byte("pong")) }); err != nil {
		t.Fatal(err)
	}
	r2.Conn().Flush()
	eventually(t, 5*time.Second, "r1 → r2", func() error {
		_, err := r1.Conn().Request("t.ext", nil, 500*time.Millisecond)
		return err
	})
}
