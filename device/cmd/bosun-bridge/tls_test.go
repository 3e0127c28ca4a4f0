package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCA writes a self-signed CA certificate in PEM to dir/ca.pem.
func writeCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCloudCA(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string // "" means no error
		client  bool   // a client of its own, trusting the CA
	}{
		{name: "no CA: the system's roots", env: map[string]string{"BOSUN_CLOUD_URL": "wss://cloud.example/v1/device"}},
		{name: "CA for wss", env: map[string]string{"BOSUN_CLOUD_URL": "wss://cloud.example/v1/device", "BOSUN_CLOUD_CA": ca}, client: true},
		{name: "CA for ws", env: map[string]string{"BOSUN_CLOUD_URL": "ws://cloud.example/v1/device", "BOSUN_CLOUD_CA": ca},
			wantErr: "has no TLS; use wss://"},
		{name: "missing CA file", env: map[string]string{"BOSUN_CLOUD_URL": "wss://cloud.example/v1/device", "BOSUN_CLOUD_CA": filepath.Join(dir, "nope.pem")},
			wantErr: "cloud CA (BOSUN_CLOUD_CA): open"},
		{name: "CA file without a certificate", env: map[string]string{"BOSUN_CLOUD_URL": "wss://cloud.example/v1/device", "BOSUN_CLOUD_CA": notPEM},
			wantErr: "no PEM certificate in " + notPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["BOSUN_DEVICE_ID"] = "d"
			c, err := loadConfig(nil, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (c.httpClient != nil) != tc.client {
				t.Fatalf("client %v, want one: %v", c.httpClient, tc.client)
			}
			if !tc.client {
				return
			}
			roots := c.httpClient.Transport.(*http.Transport).TLSClientConfig
			only := x509.NewCertPool()
			data, _ := os.ReadFile(ca)
			only.AppendCertsFromPEM(data)
			if !roots.RootCAs.Equal(only) || roots.MinVersion != tls.VersionTLS12 {
				t.Errorf("TLS config %+v: want the CA alone as roots, TLS 1.2+", roots)
			}
		})
	}
}
