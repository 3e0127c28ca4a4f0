// Command hello-worker is a complete custom Bosun worker: it adds the method
// hello.greet to the device it runs on. See README.md.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/bosunhq/bosun/device/worker"
)

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
	if err := w.Run(ctx); err != nil {
		slog.Error("worker", "err", err)
		os.Exit(1)
	}
}
