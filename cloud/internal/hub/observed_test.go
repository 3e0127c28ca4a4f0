package hub_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
)

// These tests are the outside test's findings on main 323b064, one each.

// inventoryWrites counts the devices with an inventory: what state.report
// writes.
func inventoryWrites(t *testing.T, s *cloudtest.Server) int64 {
	t.Helper()
	var n int64
	if err := s.Service().Store().Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM devices WHERE inventory IS NOT NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func batchOf(n int, method, params string) []byte {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		// String ids: the device's own calls use numbers, and a reply to
		// this batch must not answer one of them.
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":"b%d","method":%q,"params":%s}`, i+1, method, params)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// TestBatchFromPendingDevice: a batch of 10,000 state.report calls from a
// device that was never accepted ran 10,000 handlers and updated 58,817
// rows. Now it is refused whole, before anything runs; a batch within the
// limit is refused entry by entry (-32002); nothing is written either way.
func TestBatchFromPendingDevice(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	d := cloudtest.MustConnect(t, s, "dev-batch", cloudtest.DeviceOptions{})
	if d.Registration.Status != rpcproto.StatusPending {
		t.Fatalf("registration = %+v", d.Registration)
	}
	before := dbState(t, s)
	for _, n := range []int{10_000, session.MaxBatch + 1, session.MaxBatch} {
		// The device engine's client ignores batch replies it did not
		// send; what matters is what the cloud did.
		if err := d.Peer.Send(ctx, batchOf(n, rpcproto.MethodStateReport, `{"hostname":"x"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Answered in order: once a call after the batches is answered, the
	// batches have been handled.
	for range 3 {
		var rr rpcproto.RegisterResult
		if err := d.Peer.Call(ctx, rpcproto.MethodRegister, map[string]any{}, &rr); err != nil || rr.Status != rpcproto.StatusPending {
			t.Fatalf("registration.register while pending: %+v %v", rr, err)
		}
	}
	if n := inventoryWrites(t, s); n != 0 {
		t.Fatalf("%d devices got an inventory from a pending device's batches", n)
	}
	if after := dbState(t, s); after != before {
		t.Fatalf("database changed: %s -> %s", before, after)
	}
	if d.Closed() {
		t.Fatal("the session ended: a refused batch is an answer, not a protocol violation")
	}
}

// TestSlowHandlerDoesNotBlockTheSession: the hub used to run device → cloud
// handlers on its read goroutine, so a slow one blocked pongs and the
// answers to the cloud's own calls. Now a handler that blocks leaves the
// session answering calls and pings.
func TestSlowHandlerDoesNotBlockTheSession(t *testing.T) {
	release := make(chan struct{})
	var blocked atomic.Int64
	s := cloudtest.NewServer(t, cloudtest.WithHub(func(o *hub.Options) {
		o.PingInterval, o.PingTimeout = 100*time.Millisecond, 200*time.Millisecond
		o.Methods = map[string]jsonrpc.HandlerFunc{"test.block": func(ctx context.Context, _ json.RawMessage) (any, error) {
			blocked.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return "released", nil
		}}
	}))
	defer close(release)
	d := accepted(t, s, "dev-slowh", cloudtest.DeviceOptions{})
	ctx := ctxT(t)
	for range 4 {
		go d.Peer.Call(ctx, "test.block", nil, nil)
	}
	cloudtest.Eventually(t, 5*time.Second, func() bool { return blocked.Load() == 4 }, "4 handlers blocked")
	// Far longer than the ping timeout, calls keep working.
	deadline := time.Now().Add(1500 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		if c := call(t, s, "dev-slowh", "test.echo"); c.Status != "succeeded" {
			t.Fatalf("call %d while handlers block: %+v", n, c)
		}
		n++
	}
	if d.Closed() {
		t.Fatal("session dropped while handlers blocked")
	}
	t.Logf("%d calls answered while 4 device → cloud handlers blocked", n)
}

// TestFrameHeaderClaimingTerabytes: a frame header claiming 2^40 bytes was
// not answered; the connection died by ping timeout 30 s later. Now the
// cloud sends 1009 at once.
func TestFrameHeaderClaimingTerabytes(t *testing.T) {
	s := cloudtest.NewServer(t)
	u, _ := url.Parse(s.DeviceURL())
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
		u.Path, u.Host, rpcproto.WebsocketSubprotocol)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	readFrame := func() (byte, []byte) {
		b0, err := br.ReadByte()
		if err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		b1, _ := br.ReadByte()
		n := int(b1 & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			io.ReadFull(br, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			io.ReadFull(br, l[:])
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		body := make([]byte, n)
		io.ReadFull(br, body)
		return b0, body
	}
	readFrame() // the auth.challenge
	hdr := []byte{0x81, 0xff}
	hdr = binary.BigEndian.AppendUint64(hdr, 1<<40)
	hdr = append(hdr, 1, 2, 3, 4, 'a', 'b', 'c')
	if _, err := conn.Write(hdr); err != nil {
		t.Fatal(err)
	}
	b0, body := readFrame()
	if b0 != 0x88 || len(body) < 2 || binary.BigEndian.Uint16(body) != 1009 {
		t.Fatalf("cloud sent frame %#x %q, want a close frame with 1009", b0, body)
	}
}

// TestDeviceToCloudInARow: device → cloud state.report through the real
// cloud and PostgreSQL, every one stored: 5,000 in a row (each is a
// database write), 100,000 with BOSUN_SOAK=1 (scripts/soak.sh). The engine
// alone takes 20,000 each way in pkg/session's TestManyCallsInARow.
func TestDeviceToCloudInARow(t *testing.T) {
	n := 5_000
	if os.Getenv("BOSUN_SOAK") == "1" {
		n = 100_000
	}
	s := cloudtest.NewServer(t)
	d := accepted(t, s, "dev-d2c", cloudtest.DeviceOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var next, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				r, err := d.Report(ctx, rpcproto.StateReportParams{Hostname: fmt.Sprint("h", i)})
				if err != nil || !r.Stored {
					if failed.Add(1) < 5 {
						t.Errorf("report %d: %+v %v", i, r, err)
					}
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	t.Logf("%d state.report in %v: %.0f/s, %d failed", n, el.Round(time.Millisecond), float64(n)/el.Seconds(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d reports failed", failed.Load(), n)
	}
	if d.Closed() {
		t.Fatal("session ended")
	}
}

// TestReplayAcrossSessionsAndReplicas: a message captured from one session
// is refused on another session of the same device, on this replica and on
// another one, and changes nothing.
func TestReplayAcrossSessionsAndReplicas(t *testing.T) {
	a := cloudtest.NewServer(t, cloudtest.WithReplica("ra"))
	b := cloudtest.NewServer(t, cloudtest.WithReplica("rb"), cloudtest.WithDatabase(a.DatabaseURL),
		cloudtest.WithNATS(a.NATSURL()), cloudtest.WithKey(a.Key))
	ctx := ctxT(t)
	d1 := accepted(t, a, "dev-x", cloudtest.DeviceOptions{})
	captured, err := d1.Seal([]byte(`{"jsonrpc":"2.0","id":77,"method":"state.report","params":{"hostname":"evil"}}`))
	if err != nil {
		t.Fatal(err)
	}
	d1.Close()
	for name, s := range map[string]*cloudtest.Server{"same replica": a, "other replica": b} {
		t.Run(name, func(t *testing.T) {
			d := cloudtest.MustConnect(t, s, "dev-x", cloudtest.DeviceOptions{Key: d1.Key})
			if err := d.WriteRaw(ctx, captured); err != nil {
				t.Fatal(err)
			}
			if code := d.WaitClosed(t, 5*time.Second); code != rpcproto.CloseProtocolViolation {
				t.Fatalf("close after a replay from another session = %d, want 4002", code)
			}
			cloudtest.Eventually(t, 5*time.Second, func() bool { return s.Hub().Rejected()["wrong_session"] >= 1 }, "wrong_session counted")
			dev, _ := s.Service().GetDevice(ctx, s.Super, "dev-x")
			if strings.Contains(string(dev.Inventory), "evil") {
				t.Fatalf("the replay was stored: %s", dev.Inventory)
			}
		})
	}
}

// TestQueuedCallDeliveredOnReturn: a call queued while the device is away
// is delivered, through Deliver, when it returns.
func TestQueuedCallDeliveredOnReturn(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	d := accepted(t, s, "dev-q", cloudtest.DeviceOptions{})
	d.PauseReading()
	d.Close()
	waitGone := func() bool {
		dev, _ := s.Service().GetDevice(ctx, s.Super, "dev-q")
		return !dev.Online
	}
	cloudtest.Eventually(t, 5*time.Second, waitGone, "offline")
	c, err := s.Service().Call(ctx, s.Super, fleet.CallRequest{DeviceID: "dev-q", Method: "test.echo",
		Params: json.RawMessage(`{"q":1}`), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "queued" {
		t.Fatalf("call to an offline device with a ttl = %+v", c)
	}
	disp := jsonrpc.NewDispatcher()
	disp.Register("test.echo", func(ctx context.Context, p json.RawMessage) (any, error) { return p, nil })
	d = cloudtest.MustConnect(t, s, "dev-q", cloudtest.DeviceOptions{Key: d.Key, Dispatcher: disp})
	if err := d.ReportMethods(ctx, "test.echo"); err != nil { // its workers are ready
		t.Fatal(err)
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		got, _ := s.Service().GetCall(ctx, s.Super, c.ID)
		return got.Status == "succeeded"
	}, "queued call delivered after the reconnect")
}
