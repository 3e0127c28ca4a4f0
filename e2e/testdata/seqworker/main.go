// Command seqworker is a test worker for e2e's fault tests: it serves
// fault.seq {"n": N} by appending N, one line, to the file named by
// BOSUN_FAULT_SEQ_FILE, so that a test can count how often, and in which
// order, each call reached a worker.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/bosunhq/bosun/device/worker"
)

type seqParams struct {
	N int `json:"n"`
}

type seqResult struct {
	N int `json:"n"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := os.OpenFile(os.Getenv("BOSUN_FAULT_SEQ_FILE"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		slog.Error("opening BOSUN_FAULT_SEQ_FILE", "err", err)
		os.Exit(1)
	}
	defer f.Close()
	nc, err := worker.Connect(worker.ConnectOptions{Name: "seqworker"})
	if err != nil {
		slog.Error("connecting", "err", err)
		os.Exit(1)
	}
	defer nc.Close()
	var mu sync.Mutex
	w := worker.New(nc, "fault")
	w.Handle("fault.seq", "Record n (a test worker)", worker.Func(func(_ context.Context, p seqParams) (seqResult, error) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintf(f, "%d\n", p.N); err != nil {
			return seqResult{}, err
		}
		return seqResult{N: p.N}, f.Sync()
	}))
	if err := w.Run(ctx); err != nil {
		slog.Error("worker", "err", err)
		os.Exit(1)
	}
}
