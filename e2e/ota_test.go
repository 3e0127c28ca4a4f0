package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bosunhq/bosun/pkg/release"
)

// otaReport is one row of GET /devices/{id}/ota/reports.
type otaReport struct {
	Seq      int64  `json:"seq"`
	UpdateID string `json:"update_id"`
	Target   string `json:"target"`
	Status   string `json:"status"`
	Percent  *int   `json:"percent"`
	Reason   string `json:"reason"`
}

// API calls the stack's API with its run-dev token and decodes a JSON
// answer into out (unless nil); a status other than 2xx is an error.
func (s *Stack) API(ctx context.Context, tb testing.TB, method, path string, body io.Reader, out any) error {
	_, _, token := s.Credentials(tb)
	req, err := http.NewRequestWithContext(ctx, method, s.URL+"/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// otaReports returns the device's ota.status reports, oldest first.
func (s *Stack) otaReports(ctx context.Context, tb testing.TB, device string) []otaReport {
	tb.Helper()
	var list struct {
		Items []otaReport `json:"items"`
	}
	if err := s.API(ctx, tb, "GET", "/devices/"+device+"/ota/reports?limit=500", nil, &list); err != nil {
		tb.Fatal(err)
	}
	rs := list.Items
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	return rs
}

// acceptDevOTA accepts the stack's device and waits until its OTA worker
// serves.
func acceptDevOTA(ctx context.Context, t *testing.T, s *Stack) {
	t.Helper()
	if _, err := s.CLI(ctx, "accept", s.Device); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, "ota.update in rpc.list", func() error {
		out, err := s.CLI(ctx, "call", s.Device, "rpc.list")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"ota.update"`) || !strings.Contains(out, `"hello.greet"`) {
			return fmt.Errorf("not yet:\n%s", out)
		}
		return nil
	})
}

// TestBreachedCloudCannotForge: an attacker holds the cloud's database and
// its online keys, and makes it serve freshly signed snapshot and timestamp
// metadata over a targets.json of its own naming a bundle the release key
// never signed. The real device of ./run-dev.sh (bridge and bosun-ota,
// with the pinned root of keys/release) refuses the update before it
// downloads a byte, says why, and keeps running its committed slot.
func TestBreachedCloudCannotForge(t *testing.T) {
	s := StartStack(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	acceptDevOTA(ctx, t, s)

	var hits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("evil bundle"))
	}))
	defer evil.Close()

	// The attacker: the cloud's own online keys, a targets key of its own.
	online, err := release.OpenOnline(filepath.Join(s.Dir, "cloud", "release"), nil)
	if err != nil {
		t.Fatal(err)
	}
	attacker := filepath.Join(t.TempDir(), "attacker")
	if err := release.InitRepo(attacker, online.Keys()); err != nil {
		t.Fatal(err)
	}
	evilFile := filepath.Join(t.TempDir(), "evil.tar.gz")
	os.WriteFile(evilFile, []byte("evil bundle"), 0o600)
	forgedTargets, err := release.SignTarget(attacker, "hello", "6.6.6", evilFile, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	attackerRoot, _ := os.ReadFile(filepath.Join(attacker, "1.root.json"))
	forged, err := online.Accept(release.Repo{}, attackerRoot, forgedTargets)
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, s.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	// Devices pinned the real root: keep it, forge the rest.
	tag, err := db.Exec(ctx, `UPDATE release_repos SET targets = $1, snapshot = $2, timestamp = $3`,
		forged.Targets, forged.Snapshot, forged.Timestamp)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("forging the metadata: %v, %d rows", err, tag.RowsAffected())
	}
	out, err := s.CLI(ctx, "call", s.Device, "ota.update", `{"target":"hello/6.6.6","url":"`+evil.URL+`/evil","commit_timeout":60}`)
	if err != nil {
		t.Fatalf("ota.update: %v\n%s", err, out)
	}
	wantRefused := func(what string) {
		t.Helper()
		Eventually(t, 30*time.Second, what+": the update refused", func() error {
			rs := s.otaReports(ctx, t, s.Device)
			if len(rs) == 0 || rs[len(rs)-1].Status != "failed" {
				return fmt.Errorf("reports %+v", rs)
			}
			if r := rs[len(rs)-1].Reason; !strings.Contains(r, "not signed by the trusted keys") {
				return fmt.Errorf("refused for another reason: %q", r)
			}
			return nil
		})
	}
	wantRefused("forged targets")
	// Second round: the root too. Devices follow only roots that their
	// pinned root (or a root it signed) signed.
	if _, err := db.Exec(ctx, `UPDATE release_repos SET root = $1`, attackerRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE release_roots SET body = $1 WHERE version = 1`, attackerRoot); err != nil {
		t.Fatal(err)
	}
	before := len(s.otaReports(ctx, t, s.Device))
	if out, err := s.CLI(ctx, "call", s.Device, "ota.update", `{"target":"hello/6.6.6","url":"`+evil.URL+`/evil","commit_timeout":60}`); err != nil {
		t.Fatalf("ota.update: %v\n%s", err, out)
	}
	Eventually(t, 30*time.Second, "a second report", func() error {
		if n := len(s.otaReports(ctx, t, s.Device)); n <= before {
			return fmt.Errorf("%d reports", n)
		}
		return nil
	})
	wantRefused("forged root and targets")

	if n := hits.Load(); n != 0 {
		t.Fatalf("the device downloaded the forged bundle %d times", n)
	}
	out, err = s.CLI(ctx, "call", s.Device, "ota.get_boot_state")
	if err != nil || !strings.Contains(out, `"active_slot": "a"`) || !strings.Contains(out, `"is_committed": true`) {
		t.Fatalf("boot state after the refusals: %v\n%s", err, out)
	}
	if out, err := s.CLI(ctx, "call", s.Device, "hello.greet", `{"name":"Ada"}`); err != nil || !strings.Contains(out, "hello, Ada") {
		t.Fatalf("hello.greet after the refusals: %v\n%s", err, out)
	}
	for _, r := range s.otaReports(ctx, t, s.Device) {
		t.Logf("report %d %s %s %q", r.Seq, r.Target, r.Status, r.Reason)
	}
}
