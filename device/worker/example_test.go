package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

type GreetParams struct {
	Name string `json:"name"`
}

type GreetResult struct {
	Greeting string `json:"greeting"`
}

// Example runs a worker against an embedded NATS server and calls it the
// way the bridge does: a JSON-RPC request on bosun.rpc.<method>. On a
// device, worker.Connect finds the bridge's NATS instead.
func Example() {
	srv, _ := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	go srv.Start()
	srv.ReadyForConnections(5 * time.Second)
	defer srv.WaitForShutdown()
	defer srv.Shutdown()
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()

	w := worker.New(nc, "hello", worker.Options{Logger: slog.New(slog.DiscardHandler)})
	w.Handle("hello.greet", "Greet someone", worker.Func(func(ctx context.Context, p GreetParams) (GreetResult, error) {
		if p.Name == "" {
			return GreetResult{}, worker.Errorf(-32602, "name is required")
		}
		return GreetResult{Greeting: "hello, " + p.Name}, nil
	}))

	// Watch the announcement rpc.list is built from.
	announced := make(chan rpcproto.WorkerAnnounce, 1)
	sub, _ := nc.Subscribe(rpcproto.SubjectAnnounce, func(m *nats.Msg) {
		var a rpcproto.WorkerAnnounce
		json.Unmarshal(m.Data, &a)
		select {
		case announced <- a:
		default:
		}
	})
	defer sub.Unsubscribe()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	a := <-announced
	fmt.Println("announced:", a.Worker, a.Methods[0].Name)

	for _, req := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"hello.greet","params":{"name":"Ada"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"hello.greet","params":{}}`,
	} {
		reply, err := nc.Request("bosun.rpc.hello.greet", []byte(req), 5*time.Second)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(reply.Data))
	}
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// announced: hello hello.greet
	// {"jsonrpc":"2.0","result":{"greeting":"hello, Ada"},"id":1}
	// {"jsonrpc":"2.0","error":{"code":-32602,"message":"name is required"},"id":2}
	// run: <nil>
}
