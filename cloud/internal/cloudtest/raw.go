package cloudtest

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

// RawConn is a device websocket after the cloud's challenge, before
// anything was sent: tests of the handshake write crafted frames with it.
type RawConn struct {
	Conn *websocket.Conn
	// Challenge is the meta of the cloud's auth.challenge.
	Challenge envelope.Meta
}

// DialRaw dials url and reads the challenge. The connection is closed when
// the test ends.
func DialRaw(ctx context.Context, tb testing.TB, url string) *RawConn {
	tb.Helper()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{rpcproto.WebsocketSubprotocol}})
	if err != nil {
		tb.Fatalf("cloudtest: dial: %v", err)
	}
	tb.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(envelope.DefaultMaxSize)
	_, frame, err := c.Read(ctx)
	if err != nil {
		tb.Fatalf("cloudtest: reading challenge: %v", err)
	}
	meta, _, err := envelope.Peek(frame, 0)
	if err != nil {
		tb.Fatalf("cloudtest: challenge: %v", err)
	}
	return &RawConn{Conn: c, Challenge: meta}
}

// RegisterFrame builds a registration.register envelope: device id in the
// params, signed as signer with key (the presented public key is pub), for
// header h. Tests vary each to break one rule at a time.
func RegisterFrame(tb testing.TB, signer string, key crypto.Signer, deviceID string, pub crypto.PublicKey, h envelope.Header) []byte {
	tb.Helper()
	der, err := keys.PublicDER(pub)
	if err != nil {
		tb.Fatal(err)
	}
	params, _ := json.Marshal(rpcproto.RegisterParams{DeviceID: deviceID, PublicKey: base64.StdEncoding.EncodeToString(der)})
	payload, _ := json.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, ID: json.RawMessage("1"), Method: rpcproto.MethodRegister, Params: params})
	return SealFrame(tb, signer, key, h, payload)
}

// SealFrame seals payload as signer.
func SealFrame(tb testing.TB, signer string, key crypto.Signer, h envelope.Header, payload []byte) []byte {
	tb.Helper()
	s, err := envelope.NewSealer(signer, key)
	if err != nil {
		tb.Fatal(err)
	}
	wire, err := s.Seal(h, payload)
	if err != nil {
		tb.Fatal(err)
	}
	return wire
}

// Header is the header of the device's first message in this
// connection's session (sequence 1); tests vary it to break one rule.
func (r *RawConn) Header() envelope.Header {
	return envelope.Header{Audience: r.Challenge.Signer, Direction: envelope.DeviceToCloud, Session: r.Challenge.Session, Seq: 1}
}

// Write writes one frame of type typ.
func (r *RawConn) Write(ctx context.Context, typ websocket.MessageType, frame []byte) error {
	return r.Conn.Write(ctx, typ, frame)
}

// WaitClose reads until the connection ends and returns the close code
// (-1 when it ended without one) and the frames read meanwhile.
func (r *RawConn) WaitClose(tb testing.TB, timeout time.Duration) (websocket.StatusCode, [][]byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var frames [][]byte
	for {
		_, f, err := r.Conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				tb.Fatalf("cloudtest: connection not closed within %s", timeout)
			}
			return websocket.CloseStatus(err), frames
		}
		frames = append(frames, f)
	}
}
