package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/cloud/internal/testpg"
	"github.com/jackc/pgx/v5"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool // holding only this CA
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a certificate for 127.0.0.1 and localhost, signed by the CA,
// and its key to certFile and keyFile.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	ca.issueUntil(t, serial, time.Now().Add(24*time.Hour), certFile, keyFile)
}

func (ca *testCA) issueUntil(t *testing.T, serial int64, notAfter time.Time, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "bosun-cloud"},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedSerial connects afresh and returns the serial number of the
// certificate the server presents, verified against roots.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLS: with a certificate and key the replica serves HTTPS only,
// trusted by a client that holds the CA; ReloadTLS serves a renewed
// certificate, and keeps the current one when the files are broken.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "test CA")
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.issue(t, 100, cert, key)
	srv := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
		c.TLSCertFile, c.TLSKeyFile = cert, key
	}))
	if !strings.HasPrefix(srv.URL(), "https://") {
		t.Fatalf("URL %s", srv.URL())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	resp, err := client.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	// Plain HTTP on the TLS port gets nothing useful.
	if resp, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered on the TLS port")
		}
	}
	// A client that does not hold the CA is refused by its own check.
	if _, err := http.Get(srv.URL() + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client with the system's roots: err = %v", err)
	}

	if got := servedSerial(t, srv.Addr(), ca.pool); got != 100 {
		t.Fatalf("serial %d, want 100", got)
	}
	ca.issue(t, 101, cert, key) // renewed
	if err := srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, srv.Addr(), ca.pool); got != 101 {
		t.Fatalf("after reload: serial %d, want 101", got)
	}
	// A broken renewal is refused and changes nothing.
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadTLS(); err == nil || !strings.Contains(err.Error(), cert) {
		t.Fatalf("reload of a broken file: err = %v", err)
	}
	if got := servedSerial(t, srv.Addr(), ca.pool); got != 101 {
		t.Fatalf("after a failed reload: serial %d, want 101 still", got)
	}
}

// TestStartRefusesBadConfig: a configuration mistake is refused before the
// database is touched (no table is created) or anything listens.
func TestStartRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	newCA(t, "test CA").issue(t, 1, cert, key)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		mod  func(*server.Config)
		want string
	}{
		{name: "cert without key", mod: func(c *server.Config) { c.TLSCertFile = cert }, want: "go together"},
		{name: "key without cert", mod: func(c *server.Config) { c.TLSKeyFile = key }, want: "go together"},
		{name: "missing cert file", mod: func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = filepath.Join(dir, "nope.crt"), key }, want: "nope.crt"},
		{name: "cert and key do not match", mod: func(c *server.Config) {
			other := filepath.Join(dir, "other.key")
			newCA(t, "other").issue(t, 2, filepath.Join(dir, "other.crt"), other)
			c.TLSCertFile, c.TLSKeyFile = cert, other
		}, want: "private key does not match"},
		{name: "expired", mod: func(c *server.Config) {
			old, oldKey := filepath.Join(dir, "old.crt"), filepath.Join(dir, "old.key")
			newCA(t, "test CA").issueUntil(t, 3, time.Now().Add(-time.Minute), old, oldKey)
			c.TLSCertFile, c.TLSKeyFile = old, oldKey
		}, want: "expired at"},
		{name: "not a certificate", mod: func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = garbage, key }, want: "garbage.pem"},
		{name: "public URL with a path", mod: func(c *server.Config) { c.PublicURL = "https://bosun.example.com/x" }, want: "no path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := testpg.URL(t)
			cfg := server.Config{DatabaseURL: db, Listen: "127.0.0.1:0", CloudKey: signer}
			tc.mod(&cfg)
			srv, err := server.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				srv.Shutdown(context.Background())
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if n := tables(t, db); n != 0 {
				t.Errorf("the database has %d tables: it was touched", n)
			}
		})
	}
}

func tables(t *testing.T, db string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// browser is a cookie-keeping client that does not follow redirects.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var loginToken = regexp.MustCompile(`name="login_token" value="([^"]+)"`)

// login fetches the login form and posts it from origin (and with
// X-Forwarded-For xff when not empty); it returns the response to the POST
// and the Set-Cookie headers of both.
func login(t *testing.T, base, email, password, origin, xff string) (*http.Response, []*http.Cookie) {
	t.Helper()
	c := browser(t)
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cookies := resp.Cookies()
	m := loginToken.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no login token in the form:\n%s", body)
	}
	form := url.Values{"email": {email}, "password": {password}, "login_token": {string(m[1])}}
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp, append(cookies, resp.Cookies()...)
}

func cookie(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// logins returns the audit log's web.login entries, oldest first.
func logins(t *testing.T, srv *cloudtest.Server) []fleet.AuditEntry {
	t.Helper()
	es, err := srv.Service().AuditLog(context.Background(), srv.Super, fleet.AuditFilter{Action: "web.login", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

// TestPublicURL: behind a TLS-terminating proxy the replica sees plain
// HTTP and a Host the proxy chose. With PublicURL https://… every cookie
// is Secure and a login posted from that origin is accepted; a post from
// another origin is refused and logs nobody in. Without PublicURL the same
// post from the public origin is refused, and cookies over plain HTTP are
// not Secure.
func TestPublicURL(t *testing.T) {
	const public = "https://bosun.example.com"
	srv := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) { c.PublicURL = public }))
	pw, err := srv.Service().CreateUser(context.Background(), "op@bosun.test", fleet.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}

	resp, cs := login(t, srv.URL(), "op@bosun.test", pw, "https://evil.example", "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body(resp), "came from another site") {
		t.Fatalf("login from another origin: %s", resp.Status)
	}
	if cookie(cs, "bosun_session") != nil {
		t.Error("a session cookie was set for a refused login")
	}
	if n := len(logins(t, srv)); n != 0 {
		t.Errorf("%d web.login entries after a refused post, want none", n)
	}

	resp, cs = login(t, srv.URL(), "op@bosun.test", pw, public, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login from the public origin: %s\n%s", resp.Status, body(resp))
	}
	for _, name := range []string{"bosun_login", "bosun_session"} {
		if c := cookie(cs, name); c == nil || !c.Secure {
			t.Errorf("cookie %s: %+v, want Secure", name, c)
		}
	}
	if es := logins(t, srv); len(es) != 1 || es[0].Outcome != "ok" {
		t.Errorf("web.login entries %+v, want one ok", es)
	}

	plain := cloudtest.NewServer(t)
	pw2, err := plain.Service().CreateUser(context.Background(), "op@bosun.test", fleet.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	resp, cs = login(t, plain.URL(), "op@bosun.test", pw2, public, "")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("without PublicURL, a post from %s: %s, want 403", public, resp.Status)
	}
	if c := cookie(cs, "bosun_login"); c == nil || c.Secure {
		t.Errorf("without PublicURL over plain HTTP: login cookie %+v, want not Secure", c)
	}
	resp, cs = login(t, plain.URL(), "op@bosun.test", pw2, "", "")
	if resp.StatusCode != http.StatusSeeOther || cookie(cs, "bosun_session") == nil {
		t.Errorf("same-origin login without PublicURL: %s", resp.Status)
	}
}

// TestTrustedProxies: X-Forwarded-For names the client only when the TCP
// peer is a trusted proxy; otherwise it is ignored, so a client cannot
// choose the address it is counted (throttled, audited, limited) by.
func TestTrustedProxies(t *testing.T) {
	remoteIP := func(t *testing.T, srv *cloudtest.Server, xff string) string {
		t.Helper()
		if _, err := srv.Service().CreateUser(context.Background(), "op@bosun.test", fleet.RoleAdmin, ""); err != nil && !errors.Is(err, fleet.ErrConflict) {
			t.Fatal(err)
		}
		before := len(logins(t, srv))
		resp, _ := login(t, srv.URL(), "op@bosun.test", "wrong password", "", xff)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password: %s", resp.Status)
		}
		es := logins(t, srv)
		if len(es) != before+1 {
			t.Fatalf("%d web.login entries, want %d", len(es), before+1)
		}
		var d struct {
			RemoteIP string `json:"remote_ip"`
		}
		if err := json.Unmarshal(es[len(es)-1].Detail, &d); err != nil {
			t.Fatal(err)
		}
		return d.RemoteIP
	}
	t.Run("trusted", func(t *testing.T) {
		srv := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		}))
		if got := remoteIP(t, srv, "198.51.100.1, 203.0.113.7"); got != "203.0.113.7" {
			t.Errorf("remote_ip %q, want 203.0.113.7 (the rightmost untrusted hop)", got)
		}
		if got := remoteIP(t, srv, ""); got != "127.0.0.1" {
			t.Errorf("without the header: remote_ip %q, want the peer", got)
		}
	})
	t.Run("not trusted", func(t *testing.T) {
		srv := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		}))
		if got := remoteIP(t, srv, "203.0.113.7"); got != "127.0.0.1" {
			t.Errorf("remote_ip %q, want the peer 127.0.0.1: it is no trusted proxy", got)
		}
	})
}
