package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web"
)

func TestLoginLogout(t *testing.T) {
	s := cloudtest.NewServer(t)
	pw := user(t, s, "ann@example.com", fleet.RoleViewer, "")
	b := newBrowser(t, s.URL())

	r := b.get("/devices")
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/login?next=%2Fdevices" {
		t.Fatalf("redirect to %q", loc)
	}
	r = b.tryLogin("ann@example.com", "wrong password")
	wantStatus(t, r, http.StatusUnauthorized)
	mustContain(t, r, "Wrong email or password.")
	if sessionCookie(b) != "" {
		t.Fatal("a failed login set a session cookie")
	}
	// A session cookie planted before login is not kept: login rotates.
	planted := &http.Cookie{Name: "bosun_session", Value: "planted-by-attacker", Path: "/"}
	u, _ := url.Parse(s.URL())
	b.c.Jar.SetCookies(u, []*http.Cookie{planted})
	r = b.tryLogin("ANN@example.com ", pw)
	wantStatus(t, r, http.StatusSeeOther)
	first := sessionCookie(b)
	if first == "" || first == "planted-by-attacker" {
		t.Fatalf("session cookie after login: %q", first)
	}
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "bosun_session=") && (!strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Lax")) {
			t.Fatalf("session cookie lacks HttpOnly or SameSite=Lax: %s", c)
		}
	}
	wantStatus(t, b.get("/devices"), http.StatusOK)
	// Logging in again rotates the session and ends the old one.
	b.tryLogin("ann@example.com", pw)
	if second := sessionCookie(b); second == first {
		t.Fatal("login did not rotate the session")
	}
	old := newBrowser(t, s.URL())
	old.c.Jar.SetCookies(u, []*http.Cookie{{Name: "bosun_session", Value: first, Path: "/"}})
	wantStatus(t, old.get("/devices"), http.StatusSeeOther)

	b.get("/")
	wantStatus(t, b.post("/logout", nil), http.StatusSeeOther)
	wantStatus(t, b.get("/devices"), http.StatusSeeOther)
	n := count(t, s, `SELECT count(*) FROM web_sessions`)
	if n != 0 {
		t.Fatalf("%d sessions left after logout", n)
	}
	mustContain(t, b.get("/audit"), "") // redirected, nothing shown
	if !strings.Contains(auditActions(t, s), "web.login:denied") {
		t.Fatal("the failed login is not in the audit log")
	}
}

func TestLoginSecureCookieUnderTLS(t *testing.T) {
	s := cloudtest.NewServer(t)
	pw := user(t, s, "tls@example.com", fleet.RoleViewer, "")
	h := web.New(s.Service(), nil, web.Options{SecureCookies: true})
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	b := newBrowser(t, srv.URL)
	b.c.Transport = srv.Client().Transport
	r := b.tryLogin("tls@example.com", pw)
	wantStatus(t, r, http.StatusSeeOther)
	found := false
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "bosun_session=") {
			found = true
			if !strings.Contains(c, "Secure") {
				t.Fatalf("cookie not Secure: %s", c)
			}
		}
	}
	if !found {
		t.Fatal("no session cookie")
	}
}

// TestLoginThrottling: an attacker at 127.0.0.2 tries bob's password ten
// times: the fifth wrong one is still checked, the sixth attempt (with the
// right password, even) is refused with 429, when to retry in the page and
// in Retry-After, and no session; bob logs in from 127.0.0.3 at once.
func TestLoginThrottling(t *testing.T) {
	s := cloudtest.NewServer(t)
	pw := user(t, s, "bob@example.com", fleet.RoleViewer, "")
	attacker := newBrowserFrom(t, s.URL(), "127.0.0.2")
	for i := 0; i < fleet.MaxLoginFailuresPerAccountAddr; i++ {
		r := attacker.tryLogin("bob@example.com", "guess")
		wantStatus(t, r, http.StatusUnauthorized)
		mustContain(t, r, "Wrong email or password.")
	}
	for i := fleet.MaxLoginFailuresPerAccountAddr; i < 10; i++ {
		password := "guess"
		if i == fleet.MaxLoginFailuresPerAccountAddr {
			password = pw
		}
		r := attacker.tryLogin("bob@example.com", password)
		wantStatus(t, r, http.StatusTooManyRequests)
		mustContain(t, r, "Too many failed logins for this account from your address. Try again in 15 minutes.")
		if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 870 || ra > 900 {
			t.Fatalf("Retry-After %q, want about 900", r.Header.Get("Retry-After"))
		}
	}
	if sessionCookie(attacker) != "" || count(t, s, `SELECT count(*) FROM web_sessions`) != 0 {
		t.Fatal("a refused login started a session")
	}
	if n := count(t, s, `SELECT count(*) FROM web_login_failures`); n != fleet.MaxLoginFailuresPerAccountAddr {
		t.Fatalf("%d failures recorded, want %d: a refused attempt records none", n, fleet.MaxLoginFailuresPerAccountAddr)
	}
	// Bob, elsewhere, is not locked out by the attacker's failures.
	newBrowserFrom(t, s.URL(), "127.0.0.3").login("bob@example.com", pw)
	if !strings.Contains(auditActions(t, s), "web.login:throttled") {
		t.Fatal("the throttled login is not in the audit log")
	}
}

func TestCSRF(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	demoDevice(t, s, "dev-1")
	before := auditActions(t, s)

	cases := []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"no token", url.Values{"act": {"accept:dev-1"}, "csrf": {""}}, nil},
		{"wrong token", url.Values{"act": {"accept:dev-1"}, "csrf": {otherToken(b.csrf)}}, nil},
		{"cross-site", url.Values{"act": {"accept:dev-1"}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"foreign origin", url.Values{"act": {"accept:dev-1"}}, []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := b.post("/pending", tc.form, tc.hdr...)
			wantStatus(t, r, http.StatusForbidden)
		})
	}
	// The login form has its own token.
	r := newBrowser(t, s.URL()).post("/login", url.Values{"email": {"op@example.com"}, "password": {"x"}})
	wantStatus(t, r, http.StatusForbidden)

	if st := deviceStatus(t, s, "dev-1"); st != "pending" {
		t.Fatalf("device is %s after refused requests", st)
	}
	if after := auditActions(t, s); after != before {
		t.Fatalf("refused requests changed the audit log:\n%s\n→\n%s", before, after)
	}
}

func TestSessionsEnd(t *testing.T) {
	s := cloudtest.NewServer(t)
	admin := loggedIn(t, s, "admin@example.com", fleet.RoleAdmin, "")
	pw := user(t, s, "dave@example.com", fleet.RoleOperator, "")
	dave1, dave2 := newBrowser(t, s.URL()), newBrowser(t, s.URL())
	dave1.login("dave@example.com", pw)
	dave2.login("dave@example.com", pw)
	id := userID(t, s, "dave@example.com")

	// A role change ends every session of the user.
	wantStatus(t, admin.post("/users/"+id+"/role", url.Values{"role": {"viewer"}}), http.StatusSeeOther)
	wantStatus(t, dave1.get("/devices"), http.StatusSeeOther)
	wantStatus(t, dave2.get("/devices"), http.StatusSeeOther)

	// So does disabling; and a disabled user cannot log in.
	dave1.login("dave@example.com", pw)
	wantStatus(t, admin.post("/users/"+id+"/disable", nil), http.StatusSeeOther)
	wantStatus(t, dave1.get("/devices"), http.StatusSeeOther)
	wantStatus(t, dave1.tryLogin("dave@example.com", pw), http.StatusUnauthorized)
	wantStatus(t, admin.post("/users/"+id+"/enable", nil), http.StatusSeeOther)

	// A password change ends the others and keeps this browser logged in.
	dave1.login("dave@example.com", pw)
	dave2.login("dave@example.com", pw)
	r := dave1.post("/account/password", url.Values{"current": {pw}, "new": {"a much longer passphrase"}, "again": {"a much longer passphrase"}})
	wantStatus(t, r, http.StatusSeeOther)
	wantStatus(t, dave1.get("/devices"), http.StatusOK)
	wantStatus(t, dave2.get("/devices"), http.StatusSeeOther)
	wantStatus(t, dave2.tryLogin("dave@example.com", pw), http.StatusUnauthorized)
	dave2.login("dave@example.com", "a much longer passphrase")

	// A change behind the dashboard's back (another tool) ends them too.
	if _, err := s.Service().Store().Pool().Exec(context.Background(), `UPDATE users SET role = 'admin' WHERE email = 'dave@example.com'`); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, dave2.get("/devices"), http.StatusSeeOther)
}

func sessionCookie(b *browser) string {
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "bosun_session" {
			return c.Value
		}
	}
	return ""
}

func count(t testing.TB, s *cloudtest.Server, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Service().Store().Pool().QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func deviceStatus(t testing.TB, s *cloudtest.Server, id string) string {
	t.Helper()
	var st string
	if err := s.Service().Store().Pool().QueryRow(context.Background(), `SELECT status FROM devices WHERE id = $1`, id).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func userID(t testing.TB, s *cloudtest.Server, email string) string {
	t.Helper()
	u, err := s.Service().Store().UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return itoa(u.ID)
}

// auditActions summarises the audit log as "action:outcome" lines.
func auditActions(t testing.TB, s *cloudtest.Server) string {
	t.Helper()
	rows, err := s.Service().Store().Pool().Query(context.Background(), `SELECT action || ':' || outcome || ':' || target FROM audit_log ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var l string
		rows.Scan(&l)
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

var _ = time.Second

// otherToken returns tok with its first character changed: another token of
// the same length (never tok itself, whatever its first character is).
func otherToken(tok string) string {
	c := byte('x')
	if tok != "" && tok[0] == c {
		c = 'y'
	}
	return string(c) + tok[1:]
}
