package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
)

// cloudHTTPClient returns the client that dials the cloud: one that trusts
// only the CA certificates in caFile, or nil (the bridge's default, the
// system's roots) when caFile is empty. Proxy settings from the
// environment (HTTPS_PROXY) apply as with the default client.
func cloudHTTPClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cloud CA (BOSUN_CLOUD_CA): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("cloud CA (BOSUN_CLOUD_CA): no PEM certificate in %s", caFile)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}
