package web_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// browser is a cookie-keeping HTTP client that behaves like a same-origin
// browser form: it sends Origin and Sec-Fetch-Site like Chromium does.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
	csrf string // the last CSRF token seen in a page
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// newBrowserFrom is newBrowser connecting from a local address of its own
// (127.0.0.2, 127.0.0.3, ...: every 127/8 address is the loopback), so that
// the server sees another client address.
func newBrowserFrom(t testing.TB, base, localIP string) *browser {
	b := newBrowser(t, base)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	b.c.Transport = &http.Transport{DialContext: d.DialContext}
	return b
}

type resp struct {
	Status int
	Body   string
	Header http.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) resp {
	b.t.Helper()
	if v, ok := req.Header["Sec-Fetch-Site"]; !ok && req.Method != http.MethodGet {
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	} else if ok && v[0] == "" {
		req.Header.Del("Sec-Fetch-Site") // like an older browser
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfRE.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return resp{Status: res.StatusCode, Body: string(body), Header: res.Header}
}

func (b *browser) get(path string, hdr ...string) resp {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

// post sends a form; the session's CSRF token is added unless the form
// names one.
func (b *browser) post(path string, form url.Values, hdr ...string) resp {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

var loginTokenRE = regexp.MustCompile(`name="login_token" value="([^"]+)"`)

// login logs in and fails the test unless it works.
func (b *browser) login(email, password string) {
	b.t.Helper()
	if r := b.tryLogin(email, password); r.Status != http.StatusSeeOther {
		b.t.Fatalf("login %s: status %d\n%s", email, r.Status, r.Body)
	}
	b.get("/") // pick up the CSRF token
}

func (b *browser) tryLogin(email, password string) resp {
	b.t.Helper()
	page := b.get("/login")
	m := loginTokenRE.FindStringSubmatch(page.Body)
	if m == nil {
		b.t.Fatalf("no login token in /login (status %d)", page.Status)
	}
	return b.post("/login", url.Values{"email": {email}, "password": {password}, "login_token": {m[1]}})
}

// user creates a user and returns its password.
func user(t testing.TB, s *cloudtest.Server, email string, role fleet.Role, org string) string {
	t.Helper()
	pw, err := s.Service().CreateUser(context.Background(), email, role, org)
	if err != nil {
		t.Fatalf("creating %s: %v", email, err)
	}
	return pw
}

// loggedIn returns a browser logged in as a new user of role in org.
func loggedIn(t testing.TB, s *cloudtest.Server, email string, role fleet.Role, org string) *browser {
	t.Helper()
	b := newBrowser(t, s.URL())
	b.login(email, user(t, s, email, role, org))
	return b
}

func mustContain(t testing.TB, r resp, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.Body, w) {
			t.Fatalf("status %d: body lacks %q:\n%s", r.Status, w, r.Body)
		}
	}
}

func wantStatus(t testing.TB, r resp, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d:\n%.3000s", r.Status, want, r.Body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
