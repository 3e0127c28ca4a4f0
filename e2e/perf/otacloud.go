package perf

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
	"github.com/coder/websocket"
)

// otaCloud is the bosun-cloud of P7 (StartCloud) with what P7 does to it:
// upload an artifact, and have devices ask for their download URLs.
type otaCloud struct {
	*Cloud
	CloudPub crypto.PublicKey
}

// startOTACloud starts bosun-cloud (StartCloud: a fresh database, a super
// user's token, a data directory for artifacts).
func startOTACloud(tb testing.TB) *otaCloud {
	tb.Helper()
	c := StartCloud(tb, CloudOptions{})
	pub, err := keys.LoadPublic(c.CloudPublic)
	if err != nil {
		tb.Fatal(err)
	}
	return &otaCloud{Cloud: c, CloudPub: pub}
}

// rawAPI calls the cloud's API with the token; body nil means none; out nil
// means the answer is discarded. A status other than 2xx is an error with
// the answer's text.
func (c *otaCloud) rawAPI(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+"/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// upload stores the file at path as artifact name/version.
func (c *otaCloud) upload(tb testing.TB, name, version, path string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.rawAPI(ctx, http.MethodPost, "/artifacts?name="+name+"&version="+version, "application/octet-stream", f, nil); err != nil {
		tb.Fatalf("uploading the artifact: %v", err)
	}
}

// downloadURLs makes n devices (dev-0 … dev-(n-1)): each is preauthorized
// with a fresh Ed25519 key, connects over the device websocket with the
// real handshake (pkg/session, as the bridge does), asks ota.latest for
// name and disconnects. It returns the n download URLs the cloud made,
// one per device, absolute. Up to 16 devices connect at a time.
func (c *otaCloud) downloadURLs(tb testing.TB, name string, n int) []string {
	tb.Helper()
	urls := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			u, err := c.deviceDownloadURL(ctx, fmt.Sprintf("dev-%d", i), name)
			urls[i], errs[i] = u, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("perf: device dev-%d: %v", i, err)
		}
	}
	return urls
}

// deviceDownloadURL is one device of downloadURLs.
func (c *otaCloud) deviceDownloadURL(ctx context.Context, id, name string) (string, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := keys.PublicDER(key.Public())
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]string{"public_key": base64.StdEncoding.EncodeToString(der)})
	if err := c.rawAPI(ctx, http.MethodPost, "/devices/"+id+"/preauthorize", "application/json", bytes.NewReader(body), nil); err != nil {
		return "", err
	}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.URL, "http")+"/v1/device",
		&websocket.DialOptions{Subprotocols: []string{rpcproto.WebsocketSubprotocol}})
	if err != nil {
		return "", err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(envelope.DefaultMaxSize)
	frame, herr := session.ReadFirst(conn, 10*time.Second)
	if herr != nil {
		return "", fmt.Errorf("reading the challenge: %w", herr)
	}
	ch, herr := session.OpenChallenge(frame, session.ChallengeCheck{Self: id, CloudKey: c.CloudPub})
	if herr != nil {
		return "", fmt.Errorf("opening the challenge: %w", herr)
	}
	sealer, err := envelope.NewSealer(id, key)
	if err != nil {
		return "", err
	}
	peer, err := session.New(session.Options{Conn: conn, Sealer: sealer, Self: id, Peer: ch.CloudID,
		PeerKey: c.CloudPub, Session: ch.Session, Direction: envelope.DeviceToCloud, Window: ch.Window,
		PingInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		peer.Run(context.Background())
	}()
	defer func() {
		peer.Close(websocket.StatusNormalClosure, "done")
		<-done
	}()
	var reg rpcproto.RegisterResult
	if err := peer.Call(ctx, rpcproto.MethodRegister, rpcproto.RegisterParams{DeviceID: id,
		PublicKey: base64.StdEncoding.EncodeToString(der)}, &reg); err != nil {
		return "", fmt.Errorf("registering: %w", err)
	}
	if reg.Status != "accepted" {
		return "", fmt.Errorf("registered as %q, want accepted (preauthorized)", reg.Status)
	}
	var v struct {
		URL    string `json:"url"`
		Length int64  `json:"length"`
	}
	// The session is accepted a moment after the registration's answer:
	// until then ota.latest is -32002 (not accepted).
	for {
		err = peer.Call(ctx, rpcproto.MethodOTALatest, map[string]string{"name": name}, &v)
		var rerr *jsonrpc.Error
		if !errors.As(err, &rerr) || rerr.Code != rpcproto.CodeNotAccepted || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		return "", fmt.Errorf("ota.latest: %w", err)
	}
	if strings.HasPrefix(v.URL, "/") {
		v.URL = c.URL + v.URL
	}
	return v.URL, nil
}
