package jsonrpc_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
)

// A Dispatcher on one side and a Client on the other, wired by a transport
// that routes every payload with IsResponse. Here the "connection" is a pair
// of function calls; in Bosun it is a websocket carrying signed envelopes.
func Example() {
	type addParams struct {
		A int `json:"a"`
		B int `json:"b"`
	}

	// The serving side.
	d := jsonrpc.NewDispatcher()
	d.Register("math.add", jsonrpc.Handler(func(ctx context.Context, p addParams) (int, error) {
		return p.A + p.B, nil
	}))
	d.Register("math.div", jsonrpc.Handler(func(ctx context.Context, p addParams) (int, error) {
		if p.B == 0 {
			return 0, jsonrpc.NewError(-32010, "division by zero", p)
		}
		return p.A / p.B, nil
	}))

	// The calling side: send writes to the peer, and whatever the peer sends
	// back is either a response (for the client) or a request (for a
	// dispatcher of our own, if we had one).
	var client *jsonrpc.Client
	peer := func(msg []byte) {
		if jsonrpc.IsResponse(msg) {
			client.Deliver(msg)
			return
		}
		if reply := d.Handle(context.Background(), msg); reply != nil {
			fmt.Printf("<-- %s\n", reply)
			client.Deliver(reply)
		}
	}
	client = jsonrpc.NewClient(func(ctx context.Context, msg []byte) error {
		fmt.Printf("--> %s\n", msg)
		peer(msg)
		return nil
	})
	defer client.Close(nil)

	ctx := context.Background()
	var sum int
	if err := client.Call(ctx, "math.add", addParams{A: 2, B: 3}, &sum); err != nil {
		fmt.Println("error:", err)
	}
	fmt.Println("sum:", sum)

	err := client.Call(ctx, "math.div", addParams{A: 1}, nil)
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) {
		fmt.Printf("code %d: %s, data %s\n", rpcErr.Code, rpcErr.Message, rpcErr.Data)
	}

	_ = client.Notify(ctx, "math.reset", nil) // a notification: no reply

	// Output:
	// --> {"jsonrpc":"2.0","method":"math.add","params":{"a":2,"b":3},"id":1}
	// <-- {"jsonrpc":"2.0","result":5,"id":1}
	// sum: 5
	// --> {"jsonrpc":"2.0","method":"math.div","params":{"a":1,"b":0},"id":2}
	// <-- {"jsonrpc":"2.0","error":{"code":-32010,"message":"division by zero","data":{"a":1,"b":0}},"id":2}
	// code -32010: division by zero, data {"a":1,"b":0}
	// --> {"jsonrpc":"2.0","method":"math.reset"}
}
