package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// TestCallLocalAndCommitOTA: a worker calls another worker's methods over
// the device's NATS; CommitOTA commits an uncommitted slot once and
// leaves a committed one alone; without an OTA worker it says so.
func TestCallLocalAndCommitOTA(t *testing.T) {
	srv := startNATS(t, "")
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var je *jsonrpc.Error
	if _, err := worker.CommitOTA(ctx, nc); !errors.As(err, &je) || je.Code != jsonrpc.CodeMethodNotFound {
		t.Fatalf("CommitOTA without an OTA worker: %v", err)
	}
	if err := worker.CallLocal(ctx, nc, "bad name!", nil, nil); err == nil {
		t.Fatal("a bad method name was sent")
	}

	committed, commits := false, 0
	ota := worker.New(nc, "fake-ota", worker.Options{Logger: slog.New(slog.DiscardHandler)})
	ota.Handle(rpcproto.MethodOTAGetBootState, "boot state", func(context.Context, json.RawMessage) (any, error) {
		return rpcproto.OTABootState{ActiveSlot: "b", IsCommitted: committed, RevertSlot: "a"}, nil
	})
	ota.Handle(rpcproto.MethodOTACommit, "commit", func(context.Context, json.RawMessage) (any, error) {
		committed = true
		commits++
		return rpcproto.OTABootState{ActiveSlot: "b", IsCommitted: true, RevertSlot: "a"}, nil
	})
	ota.Handle("fake.fail", "fails", func(context.Context, json.RawMessage) (any, error) {
		return nil, worker.Errorf(rpcproto.CodeConflict, "not now")
	})
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ota.Run(wctx) }()
	defer func() { stop(); <-done }()
	eventually(t, func() bool {
		return worker.CallLocal(ctx, nc, rpcproto.MethodOTAGetBootState, nil, nil) == nil
	})

	if now, err := worker.CommitOTA(ctx, nc); err != nil || !now || commits != 1 {
		t.Fatalf("first CommitOTA: %v, %v, %d commits", now, err, commits)
	}
	if now, err := worker.CommitOTA(ctx, nc); err != nil || now || commits != 1 {
		t.Fatalf("CommitOTA of a committed slot: %v, %v, %d commits", now, err, commits)
	}
	if err := worker.CallLocal(ctx, nc, "fake.fail", map[string]int{"x": 1}, nil); !errors.As(err, &je) || je.Code != rpcproto.CodeConflict || je.Message != "not now" {
		t.Fatalf("an error answer: %v", err)
	}
}
