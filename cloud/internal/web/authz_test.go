package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web"
)

// allow and deny are the expectations of the route table below: allow
// means the route's own answer (anything but 401, 403 and 5xx), deny a 403.
const (
	allow = 0
	deny  = http.StatusForbidden
)

var roles = []fleet.Role{fleet.RoleSuper, fleet.RoleAdmin, fleet.RoleOperator, fleet.RoleViewer}

// access is, for every route of the dashboard, what each role gets; the
// test fails when a route is missing here, so a new route needs a line.
// Anonymous visitors get 303 → /login on GET and 401 on POST unless anon
// says otherwise.
var access = map[string]struct {
	super, admin, operator, viewer int
	anon                           int // 0: the default for the method
	form                           url.Values
}{
	"GET /login":                    {allow, allow, allow, allow, http.StatusOK, nil},
	"POST /login":                   {deny, deny, deny, deny, http.StatusForbidden, nil}, // no login token
	"POST /logout":                  {allow, allow, allow, allow, 0, nil},
	"GET /{$}":                      {allow, allow, allow, allow, 0, nil},
	"GET /devices":                  {allow, allow, allow, allow, 0, nil},
	"POST /devices":                 {allow, allow, allow, deny, 0, url.Values{"act": {"tag-add"}, "id": {"a-dev"}, "bulk_tag": {"x"}}},
	"GET /calls/{id}":               {allow, allow, allow, allow, 0, nil}, // 404: no such call
	"GET /fanout":                   {allow, allow, allow, deny, 0, nil},
	"POST /fanout":                  {allow, allow, allow, deny, 0, url.Values{"tag": {"nosuchtag"}, "method": {"system.info"}}},
	"GET /pending":                  {allow, allow, allow, allow, 0, nil},
	"POST /pending":                 {allow, allow, allow, deny, 0, url.Values{"act": {"accept:a-dev"}}},
	"GET /devices/{id}":             {allow, allow, allow, allow, 0, nil},
	"POST /devices/{id}/accept":     {allow, allow, allow, deny, 0, nil},
	"POST /devices/{id}/reject":     {allow, allow, allow, deny, 0, nil},
	"POST /devices/{id}/tags":       {allow, allow, allow, deny, 0, url.Values{"tags": {"x"}}},
	"POST /devices/{id}/call":       {allow, allow, allow, deny, 0, url.Values{"method": {"system.info"}}},
	"POST /devices/{id}/containers": {allow, allow, allow, deny, 0, nil},
	"POST /devices/{id}/boot-state": {allow, allow, allow, deny, 0, nil},
	"GET /devices/{id}/logs":        {allow, allow, allow, deny, 0, nil},
	"POST /devices/{id}/logs":       {allow, allow, allow, deny, 0, url.Values{"container": {"c"}}},
	"GET /artifacts":                {allow, allow, allow, allow, 0, nil},
	"POST /artifacts":               {allow, allow, allow, deny, 0, nil}, // 400: not multipart
	"POST /artifacts/{id}/delete":   {allow, allow, allow, deny, 0, nil}, // 404: no such artifact
	"GET /deployments":              {allow, allow, allow, allow, 0, nil},
	"GET /deployments/new":          {allow, allow, allow, deny, 0, nil},
	"POST /deployments":             {allow, allow, allow, deny, 0, url.Values{"artifact": {"nosuch@1.0.0"}, "tag": {"t"}}},
	"GET /deployments/{id}":         {allow, allow, allow, allow, 0, nil}, // 404: no such deployment
	"POST /deployments/{id}/pause":  {allow, allow, allow, deny, 0, nil},
	"POST /deployments/{id}/resume": {allow, allow, allow, deny, 0, nil},
	"POST /deployments/{id}/abort":  {allow, allow, allow, deny, 0, url.Values{"confirm": {"yes"}}},
	"GET /audit":                    {allow, allow, allow, allow, 0, nil},
	"GET /users":                    {allow, allow, deny, deny, 0, nil},
	"POST /users":                   {allow, allow, deny, deny, 0, url.Values{"email": {"not-an-email"}, "role": {"viewer"}}},
	"POST /users/{id}/role":         {allow, allow, deny, deny, 0, url.Values{"role": {"viewer"}}},
	"POST /users/{id}/disable":      {allow, allow, deny, deny, 0, nil},
	"POST /users/{id}/enable":       {allow, allow, deny, deny, 0, nil},
	"GET /tokens":                   {allow, allow, allow, allow, 0, nil},
	"POST /tokens":                  {allow, allow, allow, allow, 0, url.Values{"name": {"t"}}},
	"POST /tokens/{id}/revoke":      {allow, allow, deny, deny, 0, nil}, // the target's token: only admins
	"GET /account":                  {allow, allow, allow, allow, 0, nil},
	"POST /account/password":        {allow, allow, allow, allow, 0, url.Values{"current": {"wrong"}, "new": {"x"}, "again": {"x"}}},
	"POST /org":                     {deny + 1, deny, deny, deny, 0, url.Values{"org": {"0"}}}, // super: 303
	"GET /events":                   {allow, allow, allow, allow, 0, nil},
}

// TestEveryRouteEveryRole walks every route of the dashboard as every role
// and as an anonymous visitor.
func TestEveryRouteEveryRole(t *testing.T) {
	s := cloudtest.NewServer(t)
	demoDevice(t, s, "a-dev")
	ctx := context.Background()
	pws := map[fleet.Role]string{}
	for _, r := range roles {
		pws[r] = user(t, s, string(r)+"@a.example", r, "")
	}
	target := user(t, s, "target@a.example", fleet.RoleOperator, "")
	_ = target
	_, tok, err := s.Service().CreateTokenForUser(ctx, "target@a.example", "target's")
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{
		"{id}": "a-dev",
	}
	routes := web.Routes(s.Service(), nil, web.Options{})
	seen := map[string]bool{}
	for _, rt := range routes {
		seen[rt.Pattern] = true
		want, ok := access[rt.Pattern]
		if !ok {
			t.Errorf("route %s has no line in the access table", rt.Pattern)
			continue
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.TrimSuffix(path, "{$}")
		switch {
		case strings.HasPrefix(path, "/users/"):
			path = strings.Replace(path, "{id}", userID(t, s, "target@a.example"), 1)
		case strings.HasPrefix(path, "/tokens/"):
			path = strings.Replace(path, "{id}", itoa(tok.ID), 1)
		default:
			for k, v := range params {
				path = strings.Replace(path, k, v, 1)
			}
		}
		t.Run(rt.Pattern, func(t *testing.T) {
			for _, role := range append(roles, "") {
				b := newBrowser(t, s.URL())
				exp := 0
				switch role {
				case fleet.RoleSuper:
					exp = want.super
				case fleet.RoleAdmin:
					exp = want.admin
				case fleet.RoleOperator:
					exp = want.operator
				case fleet.RoleViewer:
					exp = want.viewer
				default:
					exp = want.anon
					if exp == 0 {
						exp = map[string]int{"GET": http.StatusSeeOther, "POST": http.StatusUnauthorized}[method]
					}
				}
				if role != "" {
					b.login(string(role)+"@a.example", pws[role])
				}
				var got resp
				form := url.Values{}
				for k, v := range want.form {
					form[k] = v
				}
				switch {
				case path == "/events":
					got = b.peek(path)
					if got.Status >= 500 {
						t.Logf("%s", b.get(path).Body)
					}
				case method == "GET":
					got = b.get(path)
				default:
					got = b.post(path, form)
				}
				name := string(role)
				if name == "" {
					name = "anonymous"
				}
				switch {
				case got.Status >= 500:
					t.Errorf("%s: status %d", name, got.Status)
				case exp == allow && (got.Status == 401 || got.Status == 403):
					t.Errorf("%s: status %d, want allowed:\n%.400s", name, got.Status, got.Body)
				case exp == deny+1 && got.Status != http.StatusSeeOther:
					t.Errorf("%s: status %d, want 303", name, got.Status)
				case exp != allow && exp != deny+1 && got.Status != exp:
					t.Errorf("%s: status %d, want %d:\n%.400s", name, got.Status, exp, got.Body)
				}
				if role == "" && method == "GET" && exp == http.StatusSeeOther && !strings.HasPrefix(got.Header.Get("Location"), "/login") {
					t.Errorf("anonymous: redirected to %q", got.Header.Get("Location"))
				}
			}
		})
	}
	for p := range access {
		if !seen[p] {
			t.Errorf("the access table names %s, which is not a route", p)
		}
	}
}

// peek fetches a streaming response's status and closes it.
func (b *browser) peek(path string) resp {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	res.Body.Close()
	return resp{Status: res.StatusCode, Header: res.Header}
}

// TestOrganisationIsolation proves that the users of organisation B can
// neither read nor change anything of organisation A by editing URLs or
// forms, and that every refusal changes nothing.
func TestOrganisationIsolation(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := context.Background()
	demoDevice(t, s, "a-dev")
	aUser := user(t, s, "alice@a.example", fleet.RoleOperator, "")
	_ = aUser
	_, aTok, err := s.Service().CreateTokenForUser(ctx, "alice@a.example", "alice's")
	if err != nil {
		t.Fatal(err)
	}
	aAdmin := loggedIn(t, s, "admin@a.example", fleet.RoleAdmin, "")
	wantStatus(t, aAdmin.post("/devices/a-dev/tags", url.Values{"tags": {"secret-tag"}}), http.StatusSeeOther)

	for _, role := range []fleet.Role{fleet.RoleAdmin, fleet.RoleOperator, fleet.RoleViewer} {
		t.Run(string(role), func(t *testing.T) {
			b := loggedIn(t, s, string(role)+"@b.example", role, "org-b")
			before := auditActions(t, s)
			calls := count(t, s, `SELECT count(*) FROM calls`)

			// Reading.
			for _, p := range []string{"/devices", "/pending", "/audit", "/", "/devices?q=a-dev", "/devices?tag=secret-tag", "/tokens"} {
				r := b.get(p)
				wantStatus(t, r, http.StatusOK)
				for _, leak := range []string{`data-device="a-dev"`, "/devices/a-dev", "alice@a.example", "admin@a.example", ">secret-tag<", "alice&#39;s"} {
					if strings.Contains(r.Body, leak) {
						t.Errorf("GET %s shows %q of organisation A", p, leak)
					}
				}
			}
			wantStatus(t, b.get("/devices/a-dev"), http.StatusNotFound)
			if role == fleet.RoleAdmin {
				r := b.get("/users")
				wantStatus(t, r, http.StatusOK)
				if strings.Contains(r.Body, "alice@a.example") {
					t.Error("/users lists organisation A's users")
				}
			}

			// Changing, by URL and by form.
			alice := userID(t, s, "alice@a.example")
			posts := []struct {
				path string
				form url.Values
			}{
				{"/devices/a-dev/accept", nil},
				{"/devices/a-dev/reject", nil},
				{"/devices/a-dev/tags", url.Values{"tags": {"mine"}}},
				{"/devices/a-dev/call", url.Values{"method": {"system.info"}}},
				{"/devices/a-dev/containers", nil},
				{"/devices/a-dev/logs", url.Values{"container": {"x"}}},
				{"/pending", url.Values{"act": {"accept"}, "id": {"a-dev"}}},
				{"/pending", url.Values{"act": {"reject:a-dev"}}},
				{"/users/" + alice + "/role", url.Values{"role": {"viewer"}}},
				{"/users/" + alice + "/disable", nil},
				{"/tokens/" + itoa(aTok.ID) + "/revoke", nil},
				{"/org", url.Values{"org": {"1"}}},
			}
			for _, p := range posts {
				r := b.post(p.path, p.form)
				if r.Status != http.StatusNotFound && r.Status != http.StatusForbidden {
					t.Errorf("POST %s: status %d, want 404 or 403", p.path, r.Status)
				}
			}
			if st := deviceStatus(t, s, "a-dev"); st != "pending" {
				t.Errorf("a-dev is %s", st)
			}
			if n := count(t, s, `SELECT count(*) FROM calls`); n != calls {
				t.Errorf("%d calls were made", n-calls)
			}
			if n := count(t, s, `SELECT count(*) FROM users WHERE email = 'alice@a.example' AND role = 'operator' AND NOT disabled`); n != 1 {
				t.Error("alice was changed")
			}
			if n := count(t, s, `SELECT count(*) FROM api_tokens WHERE id = $1 AND NOT revoked`, aTok.ID); n != 1 {
				t.Error("alice's token was revoked")
			}
			if n := count(t, s, `SELECT count(*) FROM devices WHERE id = 'a-dev' AND tags = '{secret-tag}'`); n != 1 {
				t.Error("a-dev's tags changed")
			}
			if after := auditActions(t, s); after != before {
				t.Errorf("refused requests changed the audit log:\n%s", strings.TrimPrefix(after, before))
			}
		})
	}
}
