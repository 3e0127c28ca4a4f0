// Command hello-worker is a complete custom Bosun worker: it adds the method
// hello.greet to the device it runs on. See README.md.
//
// Built with a version (go build -ldflags "-X main.version=2.0.0", as
// scripts/make-bundle.sh does for an OTA bundle) it also serves
// hello.version; run with BOSUN_OTA_COMMIT=1 (the bundle's run script sets
// it) it commits the OTA slot it runs from once it serves.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bosunhq/bosun/device/worker"
)

// version is set at build time; empty in a plain go build.
var version string

type VersionResult struct {
	Version string `json:"version"`
}

type GreetParams struct {
	Name string `json:"name"`
}

type GreetResult struct {
	Greeting string `json:"greeting"`
}

func greet(ctx context.Context, p GreetParams) (GreetResult, error) {
	if p.Name == "" {
		return GreetResult{}, worker.Errorf(-32602, "name is required")
	}
	return GreetResult{Greeting: "hello, " + p.Name}, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := worker.Connect(worker.ConnectOptions{Name: "hello-worker"}) // BOSUN_DATA_DIR → nats.url, nats.token
	if err != nil {
		slog.Error("connecting", "err", err)
		os.Exit(1)
	}
	defer nc.Close()
	w := worker.New(nc, "hello")
	w.Handle("hello.greet", "Greet someone by name", worker.Func(greet))
	if version != "" {
		w.Handle("hello.version", "The version of this hello-worker", worker.Func(func(context.Context, struct{}) (VersionResult, error) {
			return VersionResult{Version: version}, nil
		}))
	}
	if os.Getenv("BOSUN_OTA_COMMIT") == "1" {
		go commitWhenServing(ctx, nc)
	}
	if err := w.Run(ctx); err != nil {
		slog.Error("worker", "err", err)
		os.Exit(1)
	}
}

// commitWhenServing commits the OTA slot this program runs from once it
// has served for a moment: a version that crashes at start never commits,
// and the device reverts to the one before it.
func commitWhenServing(ctx context.Context, nc *nats.Conn) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Second):
	}
	for attempt := 1; attempt <= 10; attempt++ {
		committed, err := worker.CommitOTA(ctx, nc)
		if err == nil {
			slog.Info("OTA slot", "version", version, "committed_now", committed)
			return
		}
		slog.Warn("committing the OTA slot", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}
