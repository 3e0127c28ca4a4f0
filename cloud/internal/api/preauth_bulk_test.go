package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/pkg/keys"
)

// bulkBody is a POST /devices/preauthorize body for n fresh keys, ids
// PREFIX1...PREFIXn.
func bulkBody(t *testing.T, prefix string, n int) ([]wire.PreauthorizeEntry, string) {
	t.Helper()
	es := make([]wire.PreauthorizeEntry, n)
	for i := range es {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := keys.PublicDER(pub)
		if err != nil {
			t.Fatal(err)
		}
		es[i] = wire.PreauthorizeEntry{ID: fmt.Sprintf("%s%d", prefix, i+1), PublicKey: base64.StdEncoding.EncodeToString(der)}
	}
	b, _ := json.Marshal(wire.PreauthorizeBulkRequest{Devices: es})
	return es, string(b)
}

// deviceCount is how many devices the super user sees.
func deviceCount(t *testing.T, srv *cloudtest.Server) int {
	t.Helper()
	var n int
	if err := srv.Service().Store().Pool().QueryRow(t.Context(), `SELECT count(*) FROM devices`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPreauthorizeBulkRejections sends every kind of bad bulk request: each
// is refused whole, with its status and code, and no device is written.
func TestPreauthorizeBulkRejections(t *testing.T) {
	srv := cloudtest.NewServer(t)
	rt := newRoleTokens(t, srv)
	acceptedDevice(t, srv, "dev-1")
	good, _ := bulkBody(t, "b-", 3)
	body := func(es ...wire.PreauthorizeEntry) string {
		b, _ := json.Marshal(wire.PreauthorizeBulkRequest{Devices: es})
		return string(b)
	}
	_, over := bulkBody(t, "o-", 1001)
	bad := good[1]
	bad.PublicKey = "bm90IGEga2V5"
	badID := good[1]
	badID.ID = "no spaces"
	dup := good[0]
	dup.PublicKey = good[2].PublicKey
	taken := good[1]
	taken.ID = "dev-1"
	tests := []struct {
		name, token, body string
		wantStatus        int
		wantCode, wantMsg string
	}{
		{"no devices", rt.operator, `{"devices":[]}`, 400, "invalid_request", "1 to 1000"},
		{"devices missing", rt.operator, `{}`, 400, "invalid_request", "1 to 1000"},
		{"over the limit", rt.operator, over, 400, "invalid_request", "got 1001"},
		{"bad key", rt.operator, body(good[0], bad, good[2]), 400, "invalid_request", "devices[1]"},
		{"bad id", rt.operator, body(good[0], badID), 400, "invalid_request", "devices[1]"},
		{"duplicate id", rt.operator, body(good[0], good[1], dup), 400, "invalid_request", "devices[2]"},
		{"unknown field", rt.operator, `{"devices":[{"id":"x","key":"y"}]}`, 400, "invalid_request", `"key"`},
		{"viewer", rt.viewer, body(good...), 403, "forbidden", ""},
		{"another org's id", rt.other, body(good[0], taken), 409, "conflict", "devices[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := deviceCount(t, srv)
			resp, b := send(t, srv.URL(), "POST", "/api/v1/devices/preauthorize", tt.token, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, b)
			}
			if e := errorOf(t, resp, b); e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("error %+v, want code %s and a message containing %q", e, tt.wantCode, tt.wantMsg)
			}
			if after := deviceCount(t, srv); after != before {
				t.Errorf("%d devices before, %d after a refused request", before, after)
			}
		})
	}
}

// TestPreauthorizeBulk preauthorises 1000 devices (the limit) in one
// request; sending it again changes nothing.
func TestPreauthorizeBulk(t *testing.T) {
	srv := cloudtest.NewServer(t)
	rt := newRoleTokens(t, srv)
	es, body := bulkBody(t, "s-", 1000)
	for range 2 {
		resp, b := send(t, srv.URL(), "POST", "/api/v1/devices/preauthorize", rt.operator, body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var out wire.PreauthorizeBulkResponse
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if out.Preauthorized != 1000 || len(out.Devices) != 1000 || out.Devices[999].ID != "s-1000" || !strings.HasPrefix(out.Devices[0].Fingerprint, "SHA256:") {
			t.Fatalf("answer %d devices, first %+v", out.Preauthorized, out.Devices[0])
		}
		if n := deviceCount(t, srv); n != 1000 {
			t.Fatalf("%d devices, want 1000", n)
		}
	}
	resp, b := send(t, srv.URL(), "GET", "/api/v1/devices/"+es[41].ID, rt.operator, "")
	var d wire.Device
	if err := json.Unmarshal(b, &d); err != nil || resp.StatusCode != 200 || d.Status != "preauthorized" {
		t.Fatalf("%s: %d %s", es[41].ID, resp.StatusCode, b)
	}
}
