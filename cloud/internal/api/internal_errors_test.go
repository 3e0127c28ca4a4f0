package api_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// TestInternalErrorsStayInternal pushes real internal errors through the
// API: a unique constraint the code does not know (a store conflict), a
// check constraint (a pgx error), a statement that fails inside a
// transaction (a trigger raising an exception), and the store error of the original report (nothing to
// accept). Each answer carries a fixed public message without the
// internal text; the log has the whole chain; the audit log records the
// public text only.
func TestInternalErrorsStayInternal(t *testing.T) {
	var logs syncBuffer
	srv := cloudtest.NewServer(t, cloudtest.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	tok, base := srv.Token(t), srv.URL()
	ctx := context.Background()
	d := cloudtest.MustConnect(t, srv, "dev-1", cloudtest.DeviceOptions{})
	status, b := call(t, base, tok, "POST", "/devices/dev-1/accept", "")
	want(t, status, b, 200)
	<-d.Accepted()
	pool := srv.Service().Store().Pool()
	exec := func(sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE UNIQUE INDEX secret_token_name_key ON api_tokens (name)`)
	exec(`ALTER TABLE devices ADD CONSTRAINT secret_tags_check CHECK (cardinality(tags) < 2) NOT VALID`)

	tests := []struct {
		name, method, path, body string
		before                   string // SQL run first
		status                   int
		code, msg                string
		internal                 string // in the log, never in the answer
	}{
		{"nothing to accept (the original report)", "POST", "/devices/dev-1/accept", "", "", 409, wire.CodeConflict,
			"device dev-1 has no pending key to accept: its key", "store: no pending key set"},
		{"a unique constraint", "POST", "/tokens", `{"name":"ci"}`, "", 409, wire.CodeConflict,
			"this conflicts with an existing record", "secret_token_name_key"},
		{"a check constraint", "PUT", "/devices/dev-1/tags", `{"tags":["a","b"]}`, "", 500, wire.CodeInternal,
			"internal error", "secret_tags_check"},
		{"a failing statement", "POST", "/devices/dev-1/reject", "", `CREATE FUNCTION secret_fail() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN RAISE EXCEPTION 'secret_trigger says no'; END $$;
			CREATE TRIGGER secret_fail BEFORE UPDATE ON device_keys FOR EACH ROW EXECUTE FUNCTION secret_fail()`, 500, wire.CodeInternal,
			"internal error", "secret_trigger says no"},
	}
	// The token name exists once already.
	if _, b := call(t, base, tok, "POST", "/tokens", `{"name":"ci"}`); !strings.Contains(string(b), "bsn_") {
		t.Fatalf("first token: %s", b)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != "" {
				exec(tt.before)
			}
			mark := len(logs.String())
			status, b := call(t, base, tok, tt.method, tt.path, tt.body)
			want(t, status, b, tt.status)
			e := decode[wire.ErrorBody](t, b).Error
			if e.Code != tt.code || !strings.HasPrefix(e.Message, tt.msg) {
				t.Fatalf("error %+v, want %s %q", e, tt.code, tt.msg)
			}
			for _, secret := range []string{tt.internal, "store:", "secret_", "SQLSTATE"} {
				if strings.Contains(string(b), secret) {
					t.Fatalf("the answer shows internal text %q: %s", secret, b)
				}
			}
			if got := logs.String()[mark:]; !strings.Contains(got, tt.internal) {
				t.Fatalf("the log lacks the chain (%q):\n%s", tt.internal, got)
			}
		})
	}
	// The audit log records the public text of the failures, no chain.
	rows, err := srv.Service().AuditLog(ctx, srv.Super, fleet.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	failures := 0
	for _, r := range rows {
		if r.Outcome != "error" {
			continue
		}
		failures++
		for _, secret := range []string{"secret_", "store:", "SQLSTATE", "relation"} {
			if strings.Contains(string(r.Detail), secret) {
				t.Errorf("audit row %s %s records internal text %q: %s", r.Action, r.Target, secret, r.Detail)
			}
		}
	}
	if failures < 2 { // token.create and device.reject
		t.Fatalf("%d failed actions audited, want the token and the reject: %+v", failures, rows)
	}
}
