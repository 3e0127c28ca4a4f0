package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// scalePages are the pages a fleet of 10,000 devices must serve.
var scalePages = []string{
	"/devices", "/devices?page=200", "/devices?status=pending&page=20", "/devices?online=yes&tag=north",
	"/devices?q=SN-9999", "/pending", "/",
}

// seed10000 fills s with 10,000 devices, each with a key set.
func seed10000(tb testing.TB, s *cloudtest.Server) {
	tb.Helper()
	_, err := s.Service().Store().Pool().Exec(context.Background(), `
		INSERT INTO devices (id, org_id, status, tags, attributes, online)
		SELECT 'dev-' || lpad(i::text, 5, '0'), 1,
			CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'accepted' END,
			CASE WHEN i % 7 = 0 THEN ARRAY['north'] ELSE ARRAY['south'] END,
			jsonb_build_object('serial', 'SN-' || i), i % 3 = 0
		FROM generate_series(1, 10000) i;
		INSERT INTO device_keys (device_id, public_key, fingerprint, alg, status)
		SELECT id, '\x00'::bytea, 'SHA256:' || md5(id), 'ed25519', CASE status WHEN 'pending' THEN 'pending' ELSE 'accepted' END
		FROM devices;
		ANALYZE devices; ANALYZE device_keys;`)
	if err != nil {
		tb.Fatal(err)
	}
}

// TestDevicesPageWith10000Devices: with 10,000 devices the devices, pending
// and overview pages are served, page and filter right. How fast they are
// is BenchmarkPagesWith10000Devices's (scripts/bench.sh), not a test's.
func TestDevicesPageWith10000Devices(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := cloudtest.NewServer(t)
	seed10000(t, s)
	b := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	for _, p := range scalePages {
		wantStatus(t, b.get(p), http.StatusOK)
	}
	mustContain(t, b.get("/devices?page=200"), "page 200 of 200", "dev-10000")
	mustContain(t, b.get("/devices?q=SN-9999"), `data-device="dev-09999"`)
	mustContain(t, b.get("/devices?status=pending&page=20"), "dev-")
}

// BenchmarkPagesWith10000Devices times each page of scalePages with 10,000
// devices; compare the pages with each other (same run), e.g. a deep page
// against the first.
func BenchmarkPagesWith10000Devices(b *testing.B) {
	s := cloudtest.NewServer(b)
	seed10000(b, s)
	br := loggedIn(b, s, "viewer@example.com", fleet.RoleViewer, "")
	for _, p := range scalePages {
		b.Run(strings.NewReplacer("/", "_", "?", "_", "&", "_", "=", "-").Replace(p), func(b *testing.B) {
			for b.Loop() {
				if r := br.get(p); r.Status != http.StatusOK {
					b.Fatalf("GET %s: %d", p, r.Status)
				}
			}
		})
	}
}
