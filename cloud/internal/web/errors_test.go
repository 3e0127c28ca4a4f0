package web_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// logBuffer collects a server's logs; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInternalErrorsStayInternal pushes real internal errors through the
// dashboard: the store error of the original report (nothing to accept), a
// known unique constraint (the email of a user), a unique constraint the
// code does not know, a check constraint and a failing statement (pgx
// errors). Each page shows a fixed public message and not the internal
// text; the log has the chain.
func TestInternalErrorsStayInternal(t *testing.T) {
	var logs logBuffer
	s := cloudtest.NewServer(t, cloudtest.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	ctx := context.Background()
	b := loggedIn(t, s, "admin@example.com", fleet.RoleAdmin, "")
	d := cloudtest.MustConnect(t, s, "dev-1", cloudtest.DeviceOptions{})
	if _, err := s.Service().AcceptKey(ctx, s.Super, "dev-1", fingerprint(d)); err != nil {
		t.Fatal(err)
	}
	user(t, s, "taken@example.com", fleet.RoleViewer, "")
	pool := s.Service().Store().Pool()
	exec := func(sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE UNIQUE INDEX secret_token_name_key ON api_tokens (name)`)
	exec(`ALTER TABLE devices ADD CONSTRAINT secret_tags_check CHECK (cardinality(tags) < 2) NOT VALID`)
	b.get("/tokens")
	if r := b.post("/tokens", url.Values{"name": {"ci"}}); r.Status != http.StatusOK {
		t.Fatalf("first token: %d", r.Status)
	}

	tests := []struct {
		name, path string
		form       url.Values
		before     string // SQL run first
		status     int
		page       string // the page, after a redirect, when status is 303
		msg        string
		internal   string // in the log (when logged), never on the page
	}{
		{"nothing to accept (the original report)", "/pending?fingerprint=" + url.QueryEscape(fingerprint(d)), url.Values{"act": {"accept:dev-1"}}, "",
			http.StatusSeeOther, "/pending", "Not accepted: key " + fingerprint(d) + " of device dev-1 is accepted already.", ""},
		{"a known unique constraint", "/users", url.Values{"email": {"taken@example.com"}, "role": {"viewer"}}, "",
			http.StatusUnprocessableEntity, "", "a user with email taken@example.com exists already", "users_email_key"},
		{"an unknown unique constraint", "/tokens", url.Values{"name": {"ci"}}, "",
			http.StatusUnprocessableEntity, "", "this conflicts with an existing record", "secret_token_name_key"},
		{"a check constraint", "/devices/dev-1/tags", url.Values{"tags": {"a, b"}}, "",
			http.StatusInternalServerError, "", "Something went wrong on our side", "secret_tags_check"},
		{"a failing statement", "/pending", url.Values{"act": {"reject:dev-1"}}, `CREATE FUNCTION secret_fail() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN RAISE EXCEPTION 'secret_trigger says no'; END $$;
			CREATE TRIGGER secret_fail BEFORE UPDATE ON device_keys FOR EACH ROW EXECUTE FUNCTION secret_fail()`,
			http.StatusInternalServerError, "", "Something went wrong on our side", "secret_trigger says no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != "" {
				exec(tt.before)
			}
			mark := len(logs.String())
			r := b.post(tt.path, tt.form)
			wantStatus(t, r, tt.status)
			if tt.page != "" {
				r = b.get(tt.page)
			}
			mustContain(t, r, tt.msg)
			for _, secret := range []string{tt.internal, "store:", "secret_", "SQLSTATE", "conflict:"} {
				if secret != "" && strings.Contains(r.Body, secret) {
					t.Fatalf("the page shows internal text %q:\n%s", secret, r.Body)
				}
			}
			if tt.internal != "" && !strings.Contains(logs.String()[mark:], tt.internal) {
				t.Fatalf("the log lacks the chain (%q):\n%s", tt.internal, logs.String()[mark:])
			}
		})
	}
}
