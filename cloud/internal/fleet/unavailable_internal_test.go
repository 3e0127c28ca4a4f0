package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// TestGuardAnswersOutagesUnavailable: a device → cloud method whose store
// call finds the database down is answered -32005 with the fixed message
// (the bridge's outbox retries it), not -32603; any other error, and a
// *jsonrpc.Error the method chose, go through as they are.
func TestGuardAnswersOutagesUnavailable(t *testing.T) {
	refused := fmt.Errorf("storing ota report: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	chosen := jsonrpc.NewError(rpcproto.CodeConflict, "conflict", nil)
	other := errors.New("something else")
	accepted := WithDevice(context.Background(), DeviceInfo{ID: "d", Accepted: func() bool { return true }})
	tests := []struct {
		name     string
		method   string
		err      error
		wantCode int // 0: the error as it was
	}{
		{"outage", rpcproto.MethodOTAStatus, refused, rpcproto.CodeUnavailable},
		{"outage of a pending-only method", rpcproto.MethodRegister, refused, rpcproto.CodeUnavailable},
		{"a chosen rpc error", rpcproto.MethodOTAStatus, chosen, 0},
		{"another error", rpcproto.MethodOTAStatus, other, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := guard(tt.method, func(context.Context, json.RawMessage) (any, error) { return nil, tt.err })
			_, err := h(accepted, nil)
			var je *jsonrpc.Error
			if tt.wantCode == 0 {
				if err != tt.err {
					t.Fatalf("err = %v, want %v as it was", err, tt.err)
				}
				return
			}
			if !errors.As(err, &je) || je.Code != tt.wantCode || je.Message != "unavailable: the database is unavailable: try again" {
				t.Fatalf("err = %#v, want -32005 unavailable: the database is unavailable: try again", err)
			}
		})
	}
}
