package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats.go"
)

const testDeviceID = "dev-test-1"

// logBuf collects log output for assertions; safe for concurrent use.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testBridge is a running bridge and where its logs go.
type testBridge struct {
	*bridge.Bridge
	dir   string
	logs  *logBuf
	level *slog.LevelVar // of logs; Debug unless a test lowers the volume
	stop  func()
}

// startBridge starts a bridge against cloud with data dir dir and runs it
// until the test ends (or stop is called).
func startBridge(tb testing.TB, cloud *testCloud, dir string, mods ...func(*bridge.Options)) *testBridge {
	tb.Helper()
	pub, err := keys.LoadPublic("testdata/cloud_public.pem")
	if err != nil {
		tb.Fatal(err)
	}
	logs := &logBuf{}
	level := new(slog.LevelVar)
	level.Set(slog.LevelDebug)
	opts := bridge.Options{
		DeviceID:      testDeviceID,
		DataDir:       dir,
		CloudURL:      cloud.URL(),
		CloudKey:      pub,
		NATSListen:    "127.0.0.1:0",
		Backoff:       bridge.Backoff{Base: 10 * time.Millisecond, Cap: 50 * time.Millisecond},
		WorkerTimeout: 5 * time.Second,
		StateDebounce: 20 * time.Millisecond,
		SettleQuiet:   50 * time.Millisecond,
		SettleMax:     time.Second,
		OutboxRetry:   20 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level})),
	}
	for _, m := range mods {
		m(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bridge.New(ctx, opts)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			b.Close()
			b.Close() // safe twice
		})
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("bridge log:\n%s", logs.String())
		}
	})
	return &testBridge{Bridge: b, dir: dir, logs: logs, level: level, stop: stop}
}

// testWorker is a worker (built with the public SDK) whose handlers count
// the requests that reach them.
type testWorker struct {
	nc    *nats.Conn
	w     *worker.Worker
	count atomic.Int64
	slow  chan struct{} // test.slow blocks until this closes
	once  sync.Once
	// slowStarted receives when a test.slow handler starts.
	slowStarted chan struct{}
}

// release lets test.slow answer.
func (tw *testWorker) release() { tw.once.Do(func() { close(tw.slow) }) }

func startWorker(tb testing.TB, dir string) *testWorker {
	tb.Helper()
	nc, err := worker.Connect(worker.ConnectOptions{DataDir: dir, Name: "test-worker"}, nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tw := &testWorker{nc: nc, slow: make(chan struct{}), slowStarted: make(chan struct{}, 16)}
	w := worker.New(nc, "tester", worker.Options{Logger: slog.New(slog.DiscardHandler), DrainTimeout: time.Second})
	type countResult struct {
		Count int64 `json:"count"`
	}
	w.Handle("test.count", "Count calls", worker.Func(func(ctx context.Context, p struct{}) (countResult, error) {
		return countResult{tw.count.Add(1)}, nil
	}))
	type echo struct {
		Say string `json:"say"`
	}
	w.Handle("test.echo2", "Echo say", worker.Func(func(ctx context.Context, p echo) (echo, error) {
		return p, nil
	}))
	w.Handle("test.fail", "Fail with a code", func(ctx context.Context, p json.RawMessage) (any, error) {
		return nil, worker.Errorf(-32042, "it failed on purpose")
	})
	w.Handle("test.slow", "Never answer in time", func(ctx context.Context, p json.RawMessage) (any, error) {
		select {
		case tw.slowStarted <- struct{}{}:
		default:
		}
		select {
		case <-tw.slow:
		case <-ctx.Done():
		}
		return "late", nil
	})
	tw.w = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			tb.Errorf("worker: %v", err)
		}
	}()
	tb.Cleanup(func() {
		tw.release()
		cancel()
		<-done
		nc.Close()
	})
	return tw
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting until %s", what)
		}
		t := time.NewTimer(5 * time.Millisecond)
		<-t.C
	}
}

// rpcCode returns the JSON-RPC error code of err, or 0.
func rpcCode(err error) int {
	var e *jsonrpc.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// waitListed waits until rpc.list on cc names method: the worker serving it
// is subscribed.
func waitListed(tb testing.TB, cc *cloudConn, method string) {
	tb.Helper()
	eventually(tb, method+" is listed", func() bool {
		res, err := cc.call(tb, rpcproto.MethodRPCList, nil)
		return err == nil && contains(string(res), `"`+method+`"`)
	})
}

// countOf decodes the result of test.count.
func countOf(tb testing.TB, res json.RawMessage) int64 {
	tb.Helper()
	var v struct {
		Count int64 `json:"count"`
	}
	if err := json.Unmarshal(res, &v); err != nil {
		tb.Fatalf("test.count result %s: %v", res, err)
	}
	return v.Count
}
