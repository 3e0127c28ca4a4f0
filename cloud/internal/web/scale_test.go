package web_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// TestDevicesPageWith10000Devices checks that the devices, pending and
// overview pages stay fast with 10,000 devices (each with a key set).
func TestDevicesPageWith10000Devices(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := cloudtest.NewServer(t)
	ctx := context.Background()
	_, err := s.Service().Store().Pool().Exec(ctx, `
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
		t.Fatal(err)
	}
	b := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	for _, p := range []string{
		"/devices", "/devices?page=200", "/devices?status=pending&page=20", "/devices?online=yes&tag=north",
		"/devices?q=SN-9999", "/pending", "/",
	} {
		b.get(p) // warm
		start := time.Now()
		r := b.get(p)
		d := time.Since(start)
		wantStatus(t, r, http.StatusOK)
		t.Logf("GET %s: %s", p, d)
		if d > 500*time.Millisecond {
			t.Errorf("GET %s took %s", p, d)
		}
	}
	mustContain(t, b.get("/devices?page=200"), "page 200 of 200", "dev-10000")
	mustContain(t, b.get("/devices?q=SN-9999"), `data-device="dev-09999"`)
}
