package perf

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
)

// otaCloud is one bosun-cloud process of P7 on a fresh database, with an
// API token of a super user and a data directory for artifacts. (P7 keeps
// its own small starter: it needs no simulator, only devices that ask for
// a download URL.)
type otaCloud struct {
	URL      string // http://127.0.0.1:PORT
	Token    string // API token (Authorization: Bearer)
	CloudPub crypto.PublicKey
	Proc     *e2e.Process
}

// startOTACloud builds bosun-cloud and runs it on a fresh database of
// $BOSUN_TEST_DATABASE_URL (skipped without one, failed under CI=true).
func startOTACloud(tb testing.TB) *otaCloud {
	tb.Helper()
	base := e2e.Require(tb, e2e.EnvDatabaseURL, "PostgreSQL")
	bin := filepath.Join(e2e.Build(tb, "./cloud/cmd/bosun-cloud"), "bosun-cloud")
	dir := tb.TempDir()
	listen := "127.0.0.1:" + strconv.Itoa(e2e.FreePort(tb))
	c := &otaCloud{URL: "http://" + listen}
	keyDir := filepath.Join(dir, "keys")
	env := append(os.Environ(),
		"BOSUN_DATABASE_URL="+freshDB(tb, base),
		"BOSUN_LISTEN="+listen,
		"BOSUN_CLOUD_KEY="+filepath.Join(keyDir, "cloud_private.pem"),
		"BOSUN_DATA_DIR="+filepath.Join(dir, "data"),
	)
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			tb.Fatalf("bosun-cloud %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	run("keys", "ensure", "--dir", keyDir)
	run("migrate")
	run("user", "add", "--super", "--quiet", "perf@example.com")
	c.Token = run("token", "create", "--user", "perf@example.com", "--name", "perf")
	pub, err := keys.LoadPublic(filepath.Join(keyDir, "cloud_public.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	c.CloudPub = pub
	c.Proc = e2e.StartProcess(tb, dir, "bosun-cloud", env, bin, "serve")
	e2e.Eventually(tb, 30*time.Second, "bosun-cloud up", func() error {
		resp, err := http.Get(c.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
	return c
}

// freshDB creates a database on the server of base, dropped when the test
// ends, and returns its URL.
func freshDB(tb testing.TB, base string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parsing %s: %v", e2e.EnvDatabaseURL, err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "perf_" + hex.EncodeToString(b[:])
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE DATABASE " + name); err != nil {
		tb.Fatalf("creating database: %v", err)
	}
	tb.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			tb.Errorf("dropping database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// api calls the cloud's API with the token; body nil means none; out nil
// means the answer is discarded. A status other than 2xx is an error with
// the answer's text.
func (c *otaCloud) api(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
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
	if err := c.api(ctx, http.MethodPost, "/artifacts?name="+name+"&version="+version, "application/octet-stream", f, nil); err != nil {
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
	if err := c.api(ctx, http.MethodPost, "/devices/"+id+"/preauthorize", "application/json", bytes.NewReader(body), nil); err != nil {
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
