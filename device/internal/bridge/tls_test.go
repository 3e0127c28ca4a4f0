package bridge_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/bosunhq/bosun/device/internal/bridge"
)

// TestCloudOverTLS: a bridge reaches a wss:// cloud when its HTTP client
// trusts the CA that signed the cloud's certificate, and with the system's
// roots (which do not hold that CA) it is refused before any HTTP request:
// the error says the certificate is not trusted and the cloud sees no
// request and no registration.
func TestCloudOverTLS(t *testing.T) {
	t.Run("untrusted", func(t *testing.T) {
		cloud := newTestCloudTLS(t)
		b := startBridge(t, cloud, t.TempDir())
		eventually(t, "the bridge reports the untrusted certificate", func() bool {
			return contains(b.logs.String(), "the cloud's TLS certificate is not trusted") &&
				contains(b.logs.String(), "certificate signed by unknown authority")
		})
		b.stop()
		if n := cloud.dials.Load(); n != 0 {
			t.Errorf("the cloud saw %d websocket requests, want none", n)
		}
		if len(cloud.conns) != 0 {
			t.Errorf("the device registered %d times, want never", len(cloud.conns))
		}
		if s := b.Status(); s == bridge.StatusAccepted || s == bridge.StatusPending {
			t.Errorf("status %s", s)
		}
	})
	t.Run("trusting the cloud's CA", func(t *testing.T) {
		cloud := newTestCloudTLS(t)
		pool := x509.NewCertPool()
		pool.AddCert(cloud.srv.Certificate())
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		b := startBridge(t, cloud, t.TempDir(), func(o *bridge.Options) { o.HTTPClient = &http.Client{Transport: tr} })
		if cc := cloud.nextConn(t); cc.deviceID != testDeviceID {
			t.Errorf("registered %q", cc.deviceID)
		}
		eventually(t, "the bridge is accepted over wss", func() bool { return b.Status() == bridge.StatusAccepted })
	})
}
