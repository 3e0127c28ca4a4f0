package web_test

import (
	"bytes"
	"context"
	_ "embed"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/pending"
)

//go:embed testdata/expected.html
var expectedHTML []byte

var update = flag.Bool("update", false, "rewrite testdata/expected.html")

// TestSnapshotPendingPage renders the pending keys page from fixed data and
// compares it with testdata/expected.html; on a difference it writes
// testdata/actual.html (go test -update accepts it).
func TestSnapshotPendingPage(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	app.Now = func() time.Time { return now }
	defer func() { app.Now = time.Now }()
	rejectedAt := now.Add(-5 * time.Minute)
	sess := &fleet.WebSession{Actor: fleet.Actor{UserID: 1, Email: "op@example.com", OrgID: 1, Role: fleet.RoleOperator},
		CSRFToken: "csrf-token-fixed", ViewOrg: 1}
	m := pending.Model{
		Page: app.Page{Title: "Pending keys", Nav: "pending", Session: sess, Path: "/pending", Flash: "Accepted dev-0."},
		Keys: []fleet.PendingKey{
			{DeviceID: "dev-1", OrgID: 1, Fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", Alg: "ed25519",
				Attributes: map[string]string{"serial": "SN-1", "model": "pi5"}, FirstSeen: now.Add(-3 * time.Minute), Online: true, Pending: 1},
			{DeviceID: "dev-2", OrgID: 1, Fingerprint: "SHA256:n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg", Alg: "rsa-pss-sha256",
				KeyChanged: true, Attributes: map[string]string{"serial": "<b>SN-2</b>"}, FirstSeen: now.Add(-26 * time.Hour), Pending: 2},
			{DeviceID: "dev-2", OrgID: 1, Fingerprint: "SHA256:3YLpMfTKGZbW3FfXdXWbG0WQ8c8Ck1u2JFv8Xr5mQxE", Alg: "ed25519",
				KeyChanged: true, Attributes: map[string]string{"serial": "<b>SN-2</b>"}, FirstSeen: now.Add(-27 * time.Hour), Pending: 2},
		},
		Total: 3,
		Rejected: []fleet.RejectedKey{
			{DeviceID: "dev-3", OrgID: 1, Fingerprint: "SHA256:Z2lRYS9ESE5JTVR0ajBhL0RyanJlcDFtZGFkdDk3bHE", Alg: "ed25519",
				FirstSeen: now.Add(-2 * time.Hour), RejectedAt: &rejectedAt, RejectedBy: "ann@example.com"},
			{DeviceID: "dev-4", OrgID: 1, Fingerprint: "SHA256:bEKAABFDscgfMEyp6aCoTUyZYc9g6XHfOa/PcGLDnzQ", Alg: "ed25519",
				FirstSeen: now.Add(-50 * time.Hour), DeviceAccepted: true},
		},
		RejectedTotal: 2,
	}
	var buf bytes.Buffer
	if err := pending.View(m).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", "expected.html"), got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(got, expectedHTML) {
		actual := filepath.Join("testdata", "actual.html")
		os.WriteFile(actual, got, 0o644)
		t.Fatalf("the rendered page differs from testdata/expected.html; see %s (go test -run Snapshot -update accepts it)", actual)
	}
	os.Remove(filepath.Join("testdata", "actual.html"))
}
