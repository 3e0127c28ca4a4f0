package jsonrpc

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

type benchParams struct {
	Minuend    float64 `json:"minuend"`
	Subtrahend float64 `json:"subtrahend"`
}

// benchDispatcher serves "subtract" the way Bosun's methods are written: a
// typed handler with named params.
func benchDispatcher(tb testing.TB) *Dispatcher {
	tb.Helper()
	d := NewDispatcher()
	d.Register("subtract", Handler(func(ctx context.Context, p benchParams) (float64, error) {
		return p.Minuend - p.Subtrahend, nil
	}))
	return d
}

// BenchmarkHandle serves one small request with a typed handler.
func BenchmarkHandle(b *testing.B) {
	d := benchDispatcher(b)
	msg := []byte(`{"jsonrpc":"2.0","method":"subtract","params":{"minuend":42,"subtrahend":23},"id":1}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if d.Handle(ctx, msg) == nil {
			b.Fatal("no reply")
		}
	}
}

// BenchmarkHandleBatch serves the specification's mixed batch.
func BenchmarkHandleBatch(b *testing.B) {
	d, _ := specDispatcher(b)
	msg := []byte(`[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method":"notify_hello","params":[7]},{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":"2"},{"foo":"boo"},{"jsonrpc":"2.0","method":"foo.get","params":{"name":"myself"},"id":"5"},{"jsonrpc":"2.0","method":"get_data","id":"9"}]`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d.Handle(ctx, msg)
	}
}

// BenchmarkClientRoundTrip makes a call through a Client whose transport
// hands the request to a Dispatcher and the reply back to Deliver, as a
// bridge would, minus the network.
func BenchmarkClientRoundTrip(b *testing.B) {
	c := loopback(b, benchDispatcher(b))
	ctx := context.Background()
	params := benchParams{Minuend: 42, Subtrahend: 23}
	b.ReportAllocs()
	for b.Loop() {
		var r float64
		if err := c.Call(ctx, "subtract", params, &r); err != nil || r != 19 {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkClientRoundTripParallel is BenchmarkClientRoundTrip from many
// goroutines at once, to show contention on the pending table.
func BenchmarkClientRoundTripParallel(b *testing.B) {
	c := loopback(b, benchDispatcher(b))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		params := benchParams{Minuend: 42, Subtrahend: 23}
		for pb.Next() {
			var r float64
			if err := c.Call(ctx, "subtract", params, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClassify routes a typical payload.
func BenchmarkClassify(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","result":{"containers":[{"id":"abc","name":"web","state":"running"}]},"id":7}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if !IsResponse(msg) {
			b.Fatal("not a response")
		}
	}
}

// stateReport is a typical state.report: what a bridge sends on connect.
var stateReport = []byte(`{"hostname":"edge-gw-0042","os":"Debian GNU/Linux 12 (bookworm)","arch":"arm64",` +
	`"versions":{"bridge":"0.9.3","worker":"0.9.3","go":"go1.26.0","kernel":"6.1.0-21-arm64"},` +
	`"workers":["system","camera","modbus"],` +
	`"attributes":{"serial":"SN-20250601-0042","model":"gw-4","mac":"02:42:ac:11:00:02","site":"plant-3"}}`)

// BenchmarkDecodeParams compares DecodeParams with plain json.Unmarshal
// on a state.report: the price of strictness.
func BenchmarkDecodeParams(b *testing.B) {
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(stateReport)))
		for b.Loop() {
			var p rpcproto.StateReportParams
			if err := DecodeParams(stateReport, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(stateReport)))
		for b.Loop() {
			var p rpcproto.StateReportParams
			if err := json.Unmarshal(stateReport, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
