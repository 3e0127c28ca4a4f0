package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testCA is a certificate authority made for one test; Path is its
// certificate in PEM.
type testCA struct {
	Path string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func writePEM(tb testing.TB, path, typ string, der []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		tb.Fatal(err)
	}
}

// newTestCA makes a self-signed CA and writes its certificate to
// dir/name.pem.
func newTestCA(tb testing.TB, dir, name string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{Path: filepath.Join(dir, name+".pem"), cert: cert, key: key}
	writePEM(tb, ca.Path, "CERTIFICATE", der, 0o644)
	return ca
}

// issue writes a server certificate for 127.0.0.1 with the serial number,
// signed by the CA, and its key.
func (ca *testCA) issue(tb testing.TB, serial int64, certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "bosun-cloud"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(tb, certFile, "CERTIFICATE", der, 0o644)
	writePEM(tb, keyFile, "PRIVATE KEY", kder, 0o600)
}

// servedSerial connects afresh and returns the serial number of the
// certificate served at addr, verified against roots.
func servedSerial(addr string, roots *x509.CertPool) (int64, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// cleanEnv is the test's environment without what would change whom a
// process trusts or which cloud it talks to.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "BOSUN_") || strings.HasPrefix(kv, "SSL_CERT_")
	})
}

// TestCloudOverTLS runs bosun-cloud serving HTTPS itself (a certificate
// from a CA made here, --public-url https://…) and real bosun-bridge
// processes dialling wss://. A bridge that trusts only that CA
// (BOSUN_CLOUD_CA) registers, is accepted and answers a call through the
// CLI (which trusts the CA through SSL_CERT_FILE); a bridge with the
// system's roots and one trusting another CA say the certificate is not
// trusted and register nothing; SIGHUP makes the cloud serve a renewed
// certificate and keep it when the next renewal is broken; a CA file that
// is not there stops the bridge before it touches its data dir.
func TestCloudOverTLS(t *testing.T) {
	db := FreshDatabase(t, Require(t, EnvDatabaseURL, "PostgreSQL"))
	bin := Build(t, "./cloud/cmd/bosun-cloud", "./cloud/cmd/bosun", "./device/cmd/bosun-bridge")
	tmp := t.TempDir()
	ca := newTestCA(t, tmp, "ca")
	tlsCert, tlsKey := filepath.Join(tmp, "tls.crt"), filepath.Join(tmp, "tls.key")
	ca.issue(t, 2, tlsCert, tlsKey)
	otherCA := newTestCA(t, tmp, "other-ca").Path
	ctx := context.Background()

	run := func(env []string, name string, args ...string) string {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, filepath.Join(bin, name), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	keysDir := filepath.Join(tmp, "keys")
	run(cleanEnv(), "bosun-cloud", "keys", "ensure", "--dir", keysDir)

	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	public := "https://" + addr
	cloudEnv := append(cleanEnv(), "BOSUN_DATABASE_URL="+db, "BOSUN_LISTEN="+addr, "BOSUN_REPLICA=tls-1",
		"BOSUN_CLOUD_KEY="+filepath.Join(keysDir, "cloud_private.pem"), "BOSUN_PUBLIC_URL="+public,
		"BOSUN_TLS_CERT="+tlsCert, "BOSUN_TLS_KEY="+tlsKey)
	cloud := StartProcess(t, tmp, "bosun-cloud", cloudEnv, filepath.Join(bin, "bosun-cloud"), "serve")

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	Eventually(t, 60*time.Second, "the cloud answers over HTTPS", func() error {
		if cloud.Exited() {
			t.Fatalf("bosun-cloud exited:\n%s", cloud.Output())
		}
		resp, err := https.Get(public + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	resp, err := https.Get(public + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s is not Secure", c.Name)
		}
	}
	if len(resp.Cookies()) == 0 {
		t.Error("the login page set no cookie")
	}

	run(append(cleanEnv(), "BOSUN_DATABASE_URL="+db), "bosun-cloud", "user", "add", "--super", "--quiet", "admin@bosun.test")
	token := strings.TrimSpace(run(append(cleanEnv(), "BOSUN_DATABASE_URL="+db), "bosun-cloud", "token", "create", "--user", "admin@bosun.test"))
	cliEnv := append(cleanEnv(), "BOSUN_URL="+public, "BOSUN_TOKEN="+token, "SSL_CERT_FILE="+ca.Path)

	bridge := func(id string, extra ...string) *Process {
		t.Helper()
		env := append(cleanEnv(), "BOSUN_DEVICE_ID="+id, "BOSUN_DATA_DIR="+filepath.Join(tmp, id),
			"BOSUN_CLOUD_URL=wss://"+addr+"/v1/device", "BOSUN_CLOUD_PUBLIC_KEY="+filepath.Join(keysDir, "device", "cloud_public.pem"),
			"BOSUN_NATS_LISTEN=127.0.0.1:0")
		return StartProcess(t, tmp, id, append(env, extra...), filepath.Join(bin, "bosun-bridge"))
	}
	const refusal = "the cloud's TLS certificate is not trusted"
	for _, b := range []*Process{bridge("tls-system-roots"), bridge("tls-other-ca", "BOSUN_CLOUD_CA="+otherCA)} {
		Eventually(t, 30*time.Second, b.Name+" refuses the cloud's certificate", func() error {
			if out := b.Output(); !strings.Contains(out, refusal) || !strings.Contains(out, "x509: certificate signed by unknown authority") {
				return fmt.Errorf("no refusal logged yet:\n%s", tail(out, 2000))
			}
			return nil
		})
	}

	trusted := bridge("tls-trusted", "BOSUN_CLOUD_CA="+ca.Path)
	Eventually(t, 30*time.Second, "tls-trusted pending", func() error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, filepath.Join(bin, "bosun"), "devices", "--pending")
		cmd.Env = cliEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), "tls-trusted") {
			return fmt.Errorf("not listed:\n%s", out)
		}
		return nil
	})
	run(cliEnv, "bosun", "accept", "tls-trusted")
	Eventually(t, 30*time.Second, "a call over wss", func() error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, filepath.Join(bin, "bosun"), "call", "tls-trusted", "rpc.list")
		cmd.Env = cliEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), `"rpc.list"`) {
			t.Fatalf("rpc.list answered:\n%s", out)
		}
		return nil
	})
	if strings.Contains(trusted.Output(), refusal) {
		t.Errorf("the trusting bridge logged a refusal:\n%s", tail(trusted.Output(), 2000))
	}

	// A renewed certificate is served after SIGHUP; a broken one is refused
	// and the renewed one stays.
	served := func(want int64) func() error {
		return func() error {
			got, err := servedSerial(addr, pool)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("serial %d, want %d", got, want)
			}
			return nil
		}
	}
	ca.issue(t, 3, tlsCert, tlsKey)
	if err := cloud.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "the renewed certificate after SIGHUP", served(3))
	if err := os.WriteFile(tlsCert, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cloud.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "the broken renewal refused", func() error {
		if !strings.Contains(cloud.Output(), "keeping the current TLS certificate") {
			return errors.New("not logged yet")
		}
		return nil
	})
	if err := served(3)(); err != nil {
		t.Errorf("after a broken renewal: %v", err)
	}
	if cloud.Exited() {
		t.Fatalf("bosun-cloud exited after SIGHUP:\n%s", tail(cloud.Output(), 2000))
	}

	// Nothing of the refused bridges reached the database, though they
	// kept retrying all along.
	if got := deviceIDs(t, db); !slices.Equal(got, []string{"tls-trusted"}) {
		t.Errorf("devices in the database: %v, want only tls-trusted", got)
	}

	t.Run("missing CA file", func(t *testing.T) {
		data := filepath.Join(tmp, "tls-bad-ca")
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, filepath.Join(bin, "bosun-bridge"))
		cmd.Env = append(cleanEnv(), "BOSUN_DEVICE_ID=tls-bad-ca", "BOSUN_DATA_DIR="+data,
			"BOSUN_CLOUD_URL=wss://"+addr+"/v1/device", "BOSUN_CLOUD_PUBLIC_KEY="+filepath.Join(keysDir, "device", "cloud_public.pem"),
			"BOSUN_CLOUD_CA="+filepath.Join(tmp, "nope.pem"))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("bosun-bridge with a missing CA file: %v, want exit status 2\n%s", err, out)
		}
		if !strings.Contains(string(out), "BOSUN_CLOUD_CA") || !strings.Contains(string(out), "nope.pem") {
			t.Errorf("the error does not name the setting and the file:\n%s", out)
		}
		if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the data dir was created: %v", err)
		}
	})
}

// deviceIDs lists the ids of the devices table.
func deviceIDs(tb testing.TB, db string) []string {
	return queryStrings(tb, db, `SELECT id FROM devices ORDER BY id`)
}

// queryStrings runs a query of one text column on db and returns its rows.
func queryStrings(tb testing.TB, db, sql string) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
