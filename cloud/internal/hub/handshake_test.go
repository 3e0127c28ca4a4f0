package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

// dbState summarises the rows a handshake could change.
func dbState(t *testing.T, s *cloudtest.Server) string {
	t.Helper()
	var devices, keySets, versions, online int64
	err := s.Service().Store().Pool().QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM devices), (SELECT count(*) FROM device_keys),
		(SELECT coalesce(sum(session_version), 0) FROM devices), (SELECT count(*) FROM devices WHERE online)`).
		Scan(&devices, &keySets, &versions, &online)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join([]string{"devices", itoa(devices), "keys", itoa(keySets), "versions", itoa(versions), "online", itoa(online)}, " ")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestHandshakeRejections sends one broken registration per case and checks
// that the connection is refused with the expected close code and that no
// database state changed (no device row or key set, no session started).
func TestHandshakeRejections(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	// A legitimate device whose registration frame we capture to replay.
	victimKey := cloudtest.NewKey()
	victimConn := cloudtest.DialRaw(ctx, t, s.DeviceURL())
	captured := cloudtest.RegisterFrame(t, "victim", victimKey, "victim", victimKey.Public(), victimConn.Header())
	if err := victimConn.Write(ctx, websocket.MessageText, captured); err != nil {
		t.Fatal(err)
	}
	// Wait for the answer so the victim's state is settled.
	if _, _, err := victimConn.Conn.Read(ctx); err != nil {
		t.Fatal(err)
	}

	key := cloudtest.NewKey()
	other := cloudtest.NewKey()
	tests := []struct {
		name   string
		frame  func(r *cloudtest.RawConn) []byte
		binary bool
		code   websocket.StatusCode
		reason string
	}{
		{name: "garbage", frame: func(*cloudtest.RawConn) []byte { return []byte("hello, cloud") },
			code: rpcproto.CloseProtocolViolation, reason: "malformed"},
		{name: "binary frame", binary: true, frame: func(r *cloudtest.RawConn) []byte {
			return cloudtest.RegisterFrame(t, "dev-b", key, "dev-b", key.Public(), r.Header())
		}, code: rpcproto.CloseProtocolViolation, reason: "binary_frame"},
		{name: "bad signature", frame: func(r *cloudtest.RawConn) []byte {
			f := cloudtest.RegisterFrame(t, "dev-s", key, "dev-s", key.Public(), r.Header())
			i := bytes.Index(f, []byte(`"sig":"`)) + len(`"sig":"`)
			if f[i] == 'A' {
				f[i] = 'B'
			} else {
				f[i] = 'A'
			}
			return f
		}, code: rpcproto.CloseProtocolViolation, reason: "bad_signature"},
		{name: "key not the presented one", frame: func(r *cloudtest.RawConn) []byte {
			return cloudtest.RegisterFrame(t, "dev-k", other, "dev-k", key.Public(), r.Header())
		}, code: rpcproto.CloseProtocolViolation, reason: "bad_signature"},
		{name: "wrong session", frame: func(r *cloudtest.RawConn) []byte {
			h := r.Header()
			h.Session = "AAAAAAAAAAAAAAAAAAAAAA"
			return cloudtest.RegisterFrame(t, "dev-w", key, "dev-w", key.Public(), h)
		}, code: rpcproto.CloseProtocolViolation, reason: "wrong_session"},
		{name: "replay of another session's registration", frame: func(*cloudtest.RawConn) []byte { return captured },
			code: rpcproto.CloseProtocolViolation, reason: "wrong_session"},
		{name: "signer is not device_id", frame: func(r *cloudtest.RawConn) []byte {
			return cloudtest.RegisterFrame(t, "someone-else", key, "dev-x", key.Public(), r.Header())
		}, code: rpcproto.CloseProtocolViolation, reason: "signer_mismatch"},
		{name: "wrong audience", frame: func(r *cloudtest.RawConn) []byte {
			h := r.Header()
			h.Audience = "another-cloud"
			return cloudtest.RegisterFrame(t, "dev-a", key, "dev-a", key.Public(), h)
		}, code: rpcproto.CloseProtocolViolation, reason: "wrong_audience"},
		{name: "wrong direction", frame: func(r *cloudtest.RawConn) []byte {
			h := r.Header()
			h.Direction = envelope.CloudToDevice
			return cloudtest.RegisterFrame(t, "dev-d", key, "dev-d", key.Public(), h)
		}, code: rpcproto.CloseProtocolViolation, reason: "wrong_direction"},
		{name: "not a registration", frame: func(r *cloudtest.RawConn) []byte {
			return cloudtest.SealFrame(t, "dev-n", key, r.Header(), []byte(`{"jsonrpc":"2.0","id":1,"method":"state.report","params":{}}`))
		}, code: rpcproto.CloseProtocolViolation, reason: "not_register"},
		{name: "unknown params field", frame: func(r *cloudtest.RawConn) []byte {
			return cloudtest.SealFrame(t, "dev-u", key, r.Header(),
				[]byte(`{"jsonrpc":"2.0","id":1,"method":"registration.register","params":{"device_id":"dev-u","public_key":"","extra":1}}`))
		}, code: rpcproto.CloseProtocolViolation, reason: "bad_params"},
		{name: "invalid device id", frame: func(r *cloudtest.RawConn) []byte {
			return cloudtest.RegisterFrame(t, "dev..bad", key, "dev..bad", key.Public(), r.Header())
		}, code: rpcproto.CloseProtocolViolation, reason: "bad_device_id"},
		{name: "device id with a trailing dot", frame: func(r *cloudtest.RawConn) []byte {
			return cloudtest.RegisterFrame(t, "pi.kitchen.local.", key, "pi.kitchen.local.", key.Public(), r.Header())
		}, code: rpcproto.CloseProtocolViolation, reason: "bad_device_id"},
		{name: "oversize", frame: func(r *cloudtest.RawConn) []byte {
			return bytes.Repeat([]byte("x"), envelope.DefaultMaxSize+1)
		}, code: websocket.StatusMessageTooBig, reason: "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dbState(t, s)
			rejectedBefore := s.Hub().Rejected()[tt.reason]
			r := cloudtest.DialRaw(ctx, t, s.DeviceURL())
			typ := websocket.MessageText
			if tt.binary {
				typ = websocket.MessageBinary
			}
			r.Write(ctx, typ, tt.frame(r)) // may fail once the cloud closes: the close code decides
			code, frames := r.WaitClose(t, 5*time.Second)
			if code != tt.code {
				t.Errorf("close code = %d, want %d", code, tt.code)
			}
			if len(frames) != 0 {
				t.Errorf("cloud answered %d frames, want none", len(frames))
			}
			if after := dbState(t, s); after != before {
				t.Errorf("database changed: %s -> %s", before, after)
			}
			cloudtest.Eventually(t, 2*time.Second, func() bool { return s.Hub().Rejected()[tt.reason] > rejectedBefore },
				"rejection %s counted", tt.reason)
		})
	}
}

// TestHandshakeTimeout: a device that never registers gets a 4002 close
// frame (not a cut TCP connection), and nothing is stored.
func TestHandshakeTimeout(t *testing.T) {
	s := cloudtest.NewServer(t, cloudtest.WithHub(func(o *hub.Options) { o.HandshakeTimeout = 300 * time.Millisecond }))
	before := dbState(t, s)
	r := cloudtest.DialRaw(ctxT(t), t, s.DeviceURL())
	code, _ := r.WaitClose(t, 5*time.Second)
	if code != rpcproto.CloseProtocolViolation {
		t.Fatalf("close code = %d, want %d", code, rpcproto.CloseProtocolViolation)
	}
	if after := dbState(t, s); after != before {
		t.Fatalf("database changed: %s -> %s", before, after)
	}
}

// TestReplayInSession: a message replayed inside a live session closes the
// session with 4002 naming the reason; the original was served once, the
// replay changed nothing, and the device can reconnect.
func TestReplayInSession(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	d := accepted(t, s, "dev-r", cloudtest.DeviceOptions{})
	frame, err := d.Seal([]byte(`{"jsonrpc":"2.0","method":"state.report","params":{"hostname":"a"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteRaw(ctx, frame); err != nil {
		t.Fatal(err)
	}
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		dev, _ := s.Service().GetDevice(ctx, s.Super, "dev-r")
		return dev.Inventory != nil
	}, "first copy stored")
	// Change the stored inventory, so that a replay that slipped through
	// would show.
	if _, err := s.Service().Store().Pool().Exec(ctx, `UPDATE devices SET inventory = '{"hostname":"b"}' WHERE id = 'dev-r'`); err != nil {
		t.Fatal(err)
	}
	d.WriteRaw(ctx, frame)
	if code := d.WaitClosed(t, 5*time.Second); code != rpcproto.CloseProtocolViolation {
		t.Fatalf("close after a replay = %d, want %d", code, rpcproto.CloseProtocolViolation)
	}
	cloudtest.Eventually(t, 5*time.Second, func() bool { return s.Hub().Rejected()["replay"] == 1 }, "replay counted")
	dev, _ := s.Service().GetDevice(ctx, s.Super, "dev-r")
	if !strings.Contains(string(dev.Inventory), `"b"`) {
		t.Fatalf("inventory after the replay = %s, want it unchanged", dev.Inventory)
	}
	d2 := cloudtest.MustConnect(t, s, "dev-r", cloudtest.DeviceOptions{Key: d.Key})
	if d2.Registration.Status != rpcproto.StatusAccepted {
		t.Fatalf("reconnect: %+v", d2.Registration)
	}
	if _, err := d2.Report(ctx, rpcproto.StateReportParams{Hostname: "c"}); err != nil {
		t.Fatalf("report after reconnecting: %v", err)
	}
}

// TestStrictParams: state.report with a case-variant or unknown key is
// refused with -32602 naming it, and stores nothing.
func TestStrictParams(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	d := accepted(t, s, "dev-sp", cloudtest.DeviceOptions{})
	for _, params := range []string{`{"hostname":"a","Hostname":"b"}`, `{"HOSTNAME":"a"}`, `{"hostname":"a","extra":1}`} {
		_, err := d.Peer.CallRaw(ctx, rpcproto.MethodStateReport, json.RawMessage(params))
		var re *jsonrpc.Error
		if !errors.As(err, &re) || re.Code != jsonrpc.CodeInvalidParams {
			t.Fatalf("state.report %s: %v, want -32602", params, err)
		}
		dev, _ := s.Service().GetDevice(ctx, s.Super, "dev-sp")
		if dev.Inventory != nil {
			t.Fatalf("state.report %s stored %s", params, dev.Inventory)
		}
	}
}
