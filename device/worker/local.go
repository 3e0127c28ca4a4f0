package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// CallLocal calls a method another worker on the same device serves (over
// the device-local NATS, as the bridge does for the cloud) and decodes
// its result into result (unless nil). A JSON-RPC error comes back as a
// *jsonrpc.Error: CodeMethodNotFound when no worker serves method. A ctx
// without a deadline gets 30s.
func CallLocal(ctx context.Context, nc *nats.Conn, method string, params, result any) error {
	if !ValidMethod(method) {
		return fmt.Errorf("worker: invalid method name %q", method)
	}
	req := struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int    `json:"id"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{"2.0", 1, method, params}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("worker: encoding params of %s: %w", method, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	msg, err := nc.RequestWithContext(ctx, rpcproto.SubjectRPCPrefix+method, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "Method not found: no worker on this device serves " + method}
	}
	if err != nil {
		return fmt.Errorf("worker: calling %s: %w", method, err)
	}
	return decodeReply(method, msg.Data, result)
}

// CommitOTA is what a program run from an OTA slot calls once it works:
// when the device's active slot awaits its commit (ota.get_boot_state),
// it calls ota.commit, so the device keeps this version instead of
// reverting at the commit timeout. It reports whether it committed (false:
// the slot was committed already). Without an OTA worker on the device it
// returns the CodeMethodNotFound error.
func CommitOTA(ctx context.Context, nc *nats.Conn) (bool, error) {
	var bs rpcproto.OTABootState
	if err := CallLocal(ctx, nc, rpcproto.MethodOTAGetBootState, nil, &bs); err != nil {
		return false, err
	}
	if bs.IsCommitted {
		return false, nil
	}
	if err := CallLocal(ctx, nc, rpcproto.MethodOTACommit, nil, &bs); err != nil {
		return false, err
	}
	return true, nil
}
