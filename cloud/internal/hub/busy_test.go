package hub_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

// TestMaxHandshakes: at MaxHandshakes connections between upgrade and
// session start, one more is answered 503 with Retry-After before its
// upgrade, and writes nothing; when one of those handshakes ends, a device
// connects again.
func TestMaxHandshakes(t *testing.T) {
	const max = 3
	s := cloudtest.NewServer(t, cloudtest.WithHub(func(o *hub.Options) { o.MaxHandshakes = max }))
	ctx := ctxT(t)
	d0, k0 := rowCounts(t, s)
	held := make([]*cloudtest.RawConn, max)
	for i := range held { // each has its challenge and sends nothing: handshaking
		held[i] = cloudtest.DialRaw(ctx, t, s.DeviceURL())
	}
	for range 5 {
		c, resp, err := websocket.Dial(ctx, s.DeviceURL(), &websocket.DialOptions{Subprotocols: []string{rpcproto.WebsocketSubprotocol}})
		if err == nil {
			c.CloseNow()
			t.Fatal("a connection beyond MaxHandshakes was upgraded")
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("beyond MaxHandshakes: %v, response %+v; want 503 with Retry-After: 1", err, resp)
		}
	}
	if d, k := rowCounts(t, s); d != d0 || k != k0 {
		t.Fatalf("refused connections wrote rows: devices %d→%d, key sets %d→%d", d0, d, k0, k)
	}
	// One handshake ends (its device goes away): a device gets in.
	held[0].Conn.CloseNow()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := cloudtest.Connect(ctx, t, s.DeviceURL(), s.CloudPublic(), "after-busy", cloudtest.DeviceOptions{})
		if err == nil {
			if d.Registration.Status != rpcproto.StatusPending {
				t.Fatalf("registration after the bound freed: %+v", d.Registration)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no device got in after a handshake ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
