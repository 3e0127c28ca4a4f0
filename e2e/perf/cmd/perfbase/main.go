// Command perfbase serves the baselines of docs/benchmarks.md in a process
// of their own, as the cloud is in its figures, so that a figure and its
// baseline share the machine the same way:
//
//	perfbase fileserver -listen ADDR -dir DIR   plain http.FileServer of DIR
//	perfbase wsecho -listen ADDR                JSON-RPC echo over coder/websocket
//
// It prints "listening ADDR" once it accepts connections and stops on
// SIGTERM or SIGINT. The e2e/perf benchmarks build and start it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: perfbase fileserver|wsecho -listen ADDR [-dir DIR]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	dir := fs.String("dir", "", "directory to serve (fileserver)")
	fs.Parse(os.Args[2:])
	var h http.Handler
	switch os.Args[1] {
	case "fileserver":
		if *dir == "" {
			fmt.Fprintln(os.Stderr, "perfbase fileserver: -dir is required")
			os.Exit(2)
		}
		h = http.FileServer(http.Dir(*dir))
	case "wsecho":
		h = http.HandlerFunc(echo)
	default:
		fmt.Fprintf(os.Stderr, "perfbase: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *listen, h); err != nil {
		fmt.Fprintln(os.Stderr, "perfbase:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen string, h http.Handler) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// request and reply are the JSON-RPC 2.0 shapes the echo parses and
// writes: unsigned, otherwise the same work a call's JSON costs.
type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

type reply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
}

// echo answers every JSON-RPC request on the websocket with its params as
// the result, one at a time, until the client closes.
func echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		var req request
		if err := json.Unmarshal(msg, &req); err != nil || req.Method == "" {
			c.Close(websocket.StatusUnsupportedData, "not a JSON-RPC request")
			return
		}
		out, err := json.Marshal(reply{JSONRPC: "2.0", ID: req.ID, Result: req.Params})
		if err != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.Write(wctx, websocket.MessageText, out)
		cancel()
		if err != nil {
			return
		}
	}
}
