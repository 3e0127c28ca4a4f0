package e2e_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
	"github.com/bosunhq/bosun/e2e/perf"
	"github.com/jackc/pgx/v5"
)

// TestHostileWeb attacks the dashboard and the API of a running
// bosun-cloud (real PostgreSQL, real HTTP) as a hostile browser, a hostile
// user of another organisation and a user with too small a role. Every
// case asserts the clear error (status, and the API's error code or the
// dashboard's message) AND that nothing changed: every table is
// snapshotted before and after each case, except audit_log (refusals are
// audited by design), web_login_failures (a failed login is counted by
// design: the brute-force case checks it) and replicas (heartbeats), and
// except the columns that move by themselves (last_seen, online, ...).
//
// Organisation A is "default", B is "acme"; each has a viewer, an operator
// and an admin. A's objects are the targets: a preauthorized device, two
// connected ones (bosun-sim), two pending ones, a queued call, an
// artifact, a scheduled deployment, a user and a token.
func TestHostileWeb(t *testing.T) {
	h := startHostile(t)
	t.Run("routes", h.routeMatrix)
	t.Run("csrf and cross-site", h.csrfAndCrossSite)
	t.Run("cookie flags", h.cookieFlags)
	t.Run("bulk mixed ids", h.bulkMixed)
	t.Run("events stay in their organisation", h.eventsIsolation)
	t.Run("filters", h.filters)
	t.Run("bad ids", h.badIDs)
	t.Run("path traversal", h.traversal)
	t.Run("login brute force", h.bruteForce)
	h.mu.Lock()
	defer h.mu.Unlock()
	t.Logf("hostile web: %d cases (route×role×org %d), %d cross-tenant attempts, %d cross-tenant leaks, %d state changes",
		h.cases, h.matrix, h.crossTenant, h.leaks, h.changes)
	fmt.Printf("hostile web: %d cases (route×role×org %d), %d cross-tenant attempts, %d cross-tenant leaks, %d state changes\n",
		h.cases, h.matrix, h.crossTenant, h.leaks, h.changes)
	if h.leaks != 0 || h.changes != 0 {
		t.Errorf("%d leaks, %d state changes: want 0", h.leaks, h.changes)
	}
}

// publicURL is the cloud's public URL: https, so that every cookie must be
// Secure. The cloud itself listens on plain HTTP on loopback, as behind a
// TLS-terminating proxy.
const publicURL = "https://bosun.example.test"

type actor struct {
	name            string // "anonymous", "A/viewer", ...
	org, role       string // "A" or "B" ("" anonymous); viewer, operator, admin
	email, password string
	token           string // API token
	ip              string // the loopback address it connects from
	cookies         map[string]string
	csrf            string
	userID          string
	tokenID         string
}

type hostile struct {
	t        *testing.T
	c        *perf.Cloud
	cloudBin string
	db       *pgx.Conn
	tables   []string

	actors  []*actor // anonymous first, then A's, then B's
	byName  map[string]*actor
	clients sync.Map // ip → *http.Client

	// A's objects.
	aDev, aDev2, aSim1, aSim2, aPend1, aPend2 string
	aPendFP                                   map[string]string
	aCall, aArtifact, aDeployment             string
	bDev, bCall                               string
	// secrets are strings only A's data holds and no request of B names;
	// names are A's object names, which B's own requests name (and B's
	// audit log then shows, as B's own input).
	secrets, names []string

	mu                                         sync.Mutex // guards the counters
	cases, matrix, crossTenant, leaks, changes int
}

var roleRank = map[string]int{"-": 0, "viewer": 1, "operator": 2, "admin": 3, "super": 4}

func startHostile(t *testing.T) *hostile {
	start := time.Now()
	defer func() { t.Logf("setup took %v", time.Since(start).Round(time.Millisecond)) }()
	c := perf.StartCloud(t, perf.CloudOptions{Env: []string{"BOSUN_PUBLIC_URL=" + publicURL}})
	t.Logf("cloud started after %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	db, err := pgx.Connect(ctx, c.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	h := &hostile{t: t, c: c, db: db, byName: map[string]*actor{}, aPendFP: map[string]string{}, cloudBin: perf.Bin(t, "bosun-cloud")}
	rows, err := db.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
		AND table_name NOT IN ('audit_log', 'web_login_failures', 'replicas') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	h.tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(h.tables) < 10 {
		t.Fatalf("tables %v: %v", h.tables, err)
	}

	anon := &actor{name: "anonymous", role: "-", ip: "127.0.0.20", cookies: map[string]string{}}
	h.actors = append(h.actors, anon)
	h.byName[anon.name] = anon
	ip := 21
	for _, org := range []string{"A", "B"} {
		for _, role := range []string{"viewer", "operator", "admin"} {
			a := &actor{name: org + "/" + role, org: org, role: role, ip: "127.0.0." + strconv.Itoa(ip), cookies: map[string]string{}}
			ip++
			a.email = strings.ToLower(org) + "-" + role + "@" + strings.ToLower(org) + ".test"
			h.actors = append(h.actors, a)
			h.byName[a.name] = a
		}
	}
	// bosun-cloud user add and token create, a few at a time (each is a
	// process that opens the database and hashes a password).
	var wg sync.WaitGroup
	errs := make([]error, len(h.actors))
	for i, a := range h.actors[1:] {
		wg.Go(func() {
			orgName := map[string]string{"A": "default", "B": "acme"}[a.org]
			pw, err := h.admin("user", "add", "--role", a.role, "--org", orgName, "--quiet", a.email)
			if err != nil {
				errs[i] = err
				return
			}
			tok, err := h.admin("token", "create", "--user", a.email, "--name", strings.ToLower(a.org)+"-token-"+a.role)
			a.password, a.token, errs[i] = strings.TrimSpace(pw), strings.TrimSpace(tok), err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range h.actors[1:] {
		if err := db.QueryRow(ctx, `SELECT id::text FROM users WHERE email = $1`, a.email).Scan(&a.userID); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(ctx, `SELECT t.id::text FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.email = $1`, a.email).Scan(&a.tokenID); err != nil {
			t.Fatal(err)
		}
		h.login(a)
	}

	// A's devices: one preauthorized (never connects), two connected
	// simulated ones (accepted), two pending ones; B's: one preauthorized.
	h.aDev, h.aDev2, h.bDev = "a-dev-1", "a-dev-2", "b-dev-1"
	h.preauth(h.byName["A/operator"], h.aDev)
	h.preauth(h.byName["A/operator"], h.aDev2)
	h.preauth(h.byName["B/operator"], h.bDev)
	t.Logf("users and logins after %v", time.Since(start).Round(time.Millisecond))
	sim := perf.StartSim(t, c, 2, perf.SimOptions{Prefix: "a-sim-"})
	sim.WaitAccepted(t, time.Minute)
	h.aSim1, h.aSim2 = sim.ID(0), sim.ID(1)
	pend := perf.StartSim(t, c, 2, perf.SimOptions{Prefix: "a-pend-", NoPreauth: true})
	h.aPend1, h.aPend2 = pend.ID(0), pend.ID(1)
	e2e.Eventually(t, time.Minute, "two pending devices", func() error {
		rows, err := db.Query(ctx, `SELECT device_id, fingerprint FROM device_keys WHERE device_id LIKE 'a-pend-%' AND status = 'pending'`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, fp string
			rows.Scan(&id, &fp)
			h.aPendFP[id] = fp
		}
		if len(h.aPendFP) < 2 {
			return fmt.Errorf("%d pending", len(h.aPendFP))
		}
		return nil
	})
	h.api(h.byName["A/operator"], "PUT", "/devices/"+h.aSim1+"/tags", `{"tags":["a-only"]}`).want(t, 200, "")
	h.api(h.byName["A/operator"], "PUT", "/devices/"+h.aDev+"/tags", `{"tags":["a-only"]}`).want(t, 200, "")

	var call struct {
		ID string `json:"id"`
	}
	r := h.api(h.byName["A/operator"], "POST", "/devices/"+h.aDev+"/call", `{"method":"system.info","ttl":"1h"}`)
	r.want(t, 202, "")
	json.Unmarshal([]byte(r.body), &call)
	h.aCall = call.ID
	r = h.api(h.byName["B/operator"], "POST", "/devices/"+h.bDev+"/call", `{"method":"system.info","ttl":"1h"}`)
	r.want(t, 202, "")
	json.Unmarshal([]byte(r.body), &call)
	h.bCall = call.ID

	var art struct {
		ID int64 `json:"id"`
	}
	r = h.do(h.byName["A/operator"], "POST", "/api/v1/artifacts?name=orga-firmware&version=1.0.0",
		map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(tarGz(t, map[string]string{"VERSION": "1.0.0\n"})))
	r.want(t, 201, "")
	json.Unmarshal([]byte(r.body), &art)
	h.aArtifact = strconv.FormatInt(art.ID, 10)
	// B has an artifact of its own, so that its artifacts page lists
	// something (and would list A's, were it to leak).
	h.do(h.byName["B/operator"], "POST", "/api/v1/artifacts?name=orgb-firmware&version=1.0.0",
		map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(tarGz(t, map[string]string{"VERSION": "b\n"}))).want(t, 201, "")
	// A deployment, paused (so that nothing moves it): written straight
	// into the table, because creating one through the API needs signed
	// release metadata, which is not what this suite is about.
	var depID int64
	err = db.QueryRow(ctx, `INSERT INTO deployments (org_id, artifact_id, name, version, device_ids, phases, max_in_flight,
		failure_threshold, max_attempts, commit_timeout, not_before, state, created_by)
		VALUES (1, $1, 'orga-firmware', '1.0.0', ARRAY[$2], '{100}', 1, 0, 1, 60, now(), 'paused', 'a-operator@a.test') RETURNING id`,
		art.ID, h.aSim1).Scan(&depID)
	if err == nil {
		_, err = db.Exec(ctx, `INSERT INTO deployment_devices (deployment_id, device_id, phase, status) VALUES ($1, $2, 0, 'pending')`, depID, h.aSim1)
	}
	if err != nil {
		t.Fatal(err)
	}
	h.aDeployment = strconv.FormatInt(depID, 10)
	h.secrets = []string{"@a.test", "a-token-", h.aCall, h.aPendFP[h.aPend1], h.aPendFP[h.aPend2]}
	h.names = []string{"a-dev-", "a-sim-", "a-pend-", "orga-firmware"}
	return h
}

// admin runs bosun-cloud (user add, token create) on the cloud's database.
func (h *hostile) admin(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.cloudBin, args...)
	cmd.Env = append(os.Environ(), "BOSUN_DATABASE_URL="+h.c.DatabaseURL, "BOSUN_DATA_DIR="+filepath.Join(h.c.Dir, "data"),
		"BOSUN_CLOUD_KEY="+filepath.Join(h.c.Dir, "keys", "cloud_private.pem"))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bosun-cloud %v: %v\n%s", args, err, stderr.String())
	}
	return out.String(), nil
}

func edKey(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func (h *hostile) preauth(a *actor, id string) {
	h.t.Helper()
	h.api(a, "POST", "/devices/"+id+"/preauthorize", `{"public_key":"`+edKey(h.t)+`"}`).want(h.t, 200, "")
}

// tarGz is a gzipped tar of the files; a name may be anything (../x).
func tarGz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if target, ok := strings.CutPrefix(files[n], "symlink:"); ok {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n]))})
		tw.Write([]byte(files[n]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	return buf.Bytes()
}

// --- HTTP ---

type hres struct {
	status int
	hdr    http.Header
	body   string
	req    string // "METHOD path" for messages
}

// code is the API error code of the answer ("" when none).
func (r hres) code() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal([]byte(r.body), &e)
	return e.Error.Code
}

// want fails unless the status is status and, when text is set, the body
// contains text.
func (r hres) want(t testing.TB, status int, text string) {
	t.Helper()
	if r.status != status || !strings.Contains(r.body, text) {
		t.Errorf("%s: %d, want %d %q\n%.600s", r.req, r.status, status, text, r.body)
	}
}

func (h *hostile) client(ip string) *http.Client {
	if c, ok := h.clients.Load(ip); ok {
		return c.(*http.Client)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	h.clients.Store(ip, c)
	return c
}

// do sends a request as a with its cookies and keeps the cookies it gets.
func (h *hostile) do(a *actor, method, path string, hdr map[string]string, body io.Reader) hres {
	h.t.Helper()
	return h.doCtx(context.Background(), a, method, path, hdr, body, -1)
}

// doCtx is do that reads at most max bytes of the body (-1: all).
func (h *hostile) doCtx(ctx context.Context, a *actor, method, path string, hdr map[string]string, body io.Reader, max int64) hres {
	h.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, h.c.URL+path, body)
	if err != nil {
		h.t.Fatalf("%s %q: %v", method, path, err)
	}
	if strings.HasPrefix(path, "/api/v1/") && a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	var ck []string
	for k, v := range a.cookies {
		ck = append(ck, k+"="+v)
	}
	slices.Sort(ck)
	if len(ck) > 0 {
		req.Header.Set("Cookie", strings.Join(ck, "; "))
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := h.client(a.ip).Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var rd io.Reader = res.Body
	if max >= 0 && res.StatusCode == http.StatusOK { // a refusal is short: read it whole
		rd = io.LimitReader(res.Body, max)
	}
	b, _ := io.ReadAll(rd)
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(a.cookies, c.Name)
		} else {
			a.cookies[c.Name] = c.Value
		}
	}
	if m := csrfRE.FindSubmatch(b); m != nil {
		a.csrf = string(m[1])
	}
	return hres{status: res.StatusCode, hdr: res.Header, body: string(b), req: a.name + " " + method + " " + path}
}

var (
	csrfRE       = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	loginTokenRE = regexp.MustCompile(`name="login_token" value="([^"]+)"`)
)

// api sends a JSON request under /api/v1.
func (h *hostile) api(a *actor, method, path, body string) hres {
	h.t.Helper()
	hdr := map[string]string{}
	var rd io.Reader
	if body != "" {
		hdr["Content-Type"] = "application/json"
		rd = strings.NewReader(body)
	}
	return h.do(a, method, "/api/v1"+path, hdr, rd)
}

// sameOrigin is what a browser sends with a form of the dashboard itself.
var sameOrigin = map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": "application/x-www-form-urlencoded"}

// form posts a dashboard form as a same-origin browser; the session's
// CSRF token is added unless the form names one.
func (h *hostile) form(a *actor, path string, form url.Values, hdr map[string]string) hres {
	h.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if _, ok := f["csrf"]; !ok && a.csrf != "" {
		f.Set("csrf", a.csrf)
	}
	all := map[string]string{}
	for k, v := range sameOrigin {
		all[k] = v
	}
	for k, v := range hdr {
		all[k] = v
	}
	return h.do(a, "POST", path, all, strings.NewReader(f.Encode()))
}

func (h *hostile) tryLogin(a *actor, email, password string, hdr map[string]string) hres {
	h.t.Helper()
	page := h.do(a, "GET", "/login", nil, nil)
	m := loginTokenRE.FindStringSubmatch(page.body)
	if m == nil {
		h.t.Fatalf("no login token in /login (%d)", page.status)
	}
	return h.form(a, "/login", url.Values{"email": {email}, "password": {password}, "login_token": {m[1]}}, hdr)
}

func (h *hostile) login(a *actor) {
	h.t.Helper()
	if r := h.tryLogin(a, a.email, a.password, nil); r.status != http.StatusSeeOther {
		h.t.Fatalf("login %s: %d\n%.400s", a.email, r.status, r.body)
	}
	if r := h.do(a, "GET", "/", nil, nil); r.status != 200 || a.csrf == "" {
		h.t.Fatalf("%s: GET / after login: %d, csrf %q", a.name, r.status, a.csrf)
	}
}

// --- state ---

// volatile are the columns that change by themselves (sessions seen,
// devices online, heartbeats); a snapshot leaves them out.
var volatile = []string{"last_seen", "last_used", "expires_at", "online", "replica", "session_version",
	"updated_at", "connected_at", "disconnected_at", "last_addr", "heartbeat"}

// snapshot is every table but audit_log, web_login_failures and replicas,
// without the volatile columns, as one string per table.
func (h *hostile) snapshot() map[string]string {
	h.t.Helper()
	var q []string
	for _, tb := range h.tables {
		q = append(q, fmt.Sprintf(`SELECT %s, coalesce((SELECT string_agg((to_jsonb(t) - $1::text[])::text, E'\n' ORDER BY (to_jsonb(t) - $1::text[])::text) FROM %s t), '')`,
			pgQuote(tb), pgx.Identifier{tb}.Sanitize()))
	}
	rows, err := h.db.Query(context.Background(), strings.Join(q, " UNION ALL "), volatile)
	if err != nil {
		h.t.Fatalf("snapshot: %v", err)
	}
	defer rows.Close()
	snap := map[string]string{}
	for rows.Next() {
		var name, v string
		if err := rows.Scan(&name, &v); err != nil {
			h.t.Fatal(err)
		}
		snap[name] = v
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return snap
}

// lineDiff shows the rows only before and only after (a few of each).
func lineDiff(before, after string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	b, a := in(before), in(after)
	var out []string
	for l := range b {
		if !a[l] && len(out) < 3 {
			out = append(out, "- "+l)
		}
	}
	for l := range a {
		if !b[l] && len(out) < 6 {
			out = append(out, "+ "+l)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func pgQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// unchanged fails (and counts a state change) when a table differs from
// before.
func (h *hostile) unchanged(t testing.TB, what string, before map[string]string) {
	t.Helper()
	after := h.snapshot()
	for _, tb := range h.tables {
		if before[tb] != after[tb] {
			h.count(func() { h.changes++ })
			t.Errorf("%s changed table %s:\n%s", what, tb, lineDiff(before[tb], after[tb]))
		}
	}
}

func (h *hostile) count(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f()
}

// leak fails (and counts a leak) when body shows any of A's markers that
// the request did not name itself.
func (h *hostile) leak(t testing.TB, r hres, sent string) {
	t.Helper()
	markers := h.secrets
	if !strings.Contains(r.req, "/audit") {
		markers = append(slices.Clip(markers), h.names...)
	}
	for _, m := range markers {
		if m != "" && strings.Contains(r.body, m) && !strings.Contains(sent, m) {
			h.count(func() { h.leaks++ })
			i := strings.Index(r.body, m)
			t.Errorf("%s: the answer shows %q of organisation A: ...%s...", r.req, m, r.body[max(0, i-300):min(len(r.body), i+200)])
			return
		}
	}
}

// --- route × role × organisation ---

type routeLine struct{ surface, method, path, role string }

func readRoutes(t *testing.T) []routeLine {
	data, err := os.ReadFile(filepath.Join(e2e.Root(t), "cloud", "internal", "web", "testdata", "routes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []routeLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 4 {
			t.Fatalf("routes.txt: %q", sc.Text())
		}
		out = append(out, routeLine{f[0], f[1], f[2], f[3]})
	}
	if len(out) < 50 {
		t.Fatalf("routes.txt has %d routes", len(out))
	}
	return out
}

// kind is what {id} names in a path.
func kind(path string) string {
	p := strings.TrimPrefix(path, "/api/v1")
	for _, k := range []string{"devices", "calls", "artifacts", "deployments", "users", "tokens"} {
		if strings.HasPrefix(p, "/"+k+"/{id}") {
			return k
		}
	}
	return ""
}

// target is A's object of a kind; missing is an id of that kind nobody has.
func (h *hostile) target(kind string, rt routeLine) (real, missing string) {
	switch kind {
	case "devices":
		if strings.HasSuffix(rt.path, "/accept") {
			return h.aPend2, "no-such-dev"
		}
		return h.aDev, "no-such-dev"
	case "calls":
		return h.aCall, "0d7a3b0e-6c35-4f5e-9d6e-1a2b3c4d5e6f"
	case "artifacts":
		return h.aArtifact, "999999"
	case "deployments":
		return h.aDeployment, "999999"
	case "users":
		return h.byName["A/viewer"].userID, "999999"
	case "tokens":
		return h.byName["A/viewer"].tokenID, "999999"
	}
	return "", ""
}

// The matrix proves that every role below a route's is refused (on A's
// real objects) and that its least role gets past the dashboard's role
// check. For the API's state-changing routes on an object, fleet looks
// the object up before it checks the role, so an allowed role's request
// on an id nobody has proves only that it is not refused for its role
// before the lookup; that the least role succeeds on a real object is the
// API's integration tests' part (they change state, which this suite must
// not).

// request is what a route gets in the matrix: a body that would do
// something (for the refusals: a role too small, another organisation)
// or, for an allowed role of A, one that is refused after the role
// check (an unknown id, an invalid form), so that the matrix changes
// nothing. attack marks a body that names A's objects on a route without
// {id}.
func (h *hostile) body(rt routeLine, allowed bool) (body string, attack bool) {
	p := strings.TrimPrefix(rt.path, "/api/v1")
	if rt.surface == "dashboard" {
		if allowed {
			switch p {
			case "/devices", "/pending":
				return url.Values{"act": {"nothing"}}.Encode(), false
			case "/fanout", "/deployments", "/tokens", "/users", "/account/password":
				return url.Values{"name": {strings.Repeat("x", 300)}, "email": {"not-an-email"}, "current": {"wrong"}}.Encode(), false
			}
		}
		switch p {
		case "/devices":
			return url.Values{"act": {"tag-add"}, "id": {h.aDev}, "bulk_tag": {"pwned"}}.Encode(), true
		case "/pending":
			return url.Values{"act": {"accept"}, "id": {h.aPend1 + ":" + h.aPendFP[h.aPend1]}}.Encode(), true
		case "/fanout":
			return url.Values{"tag": {"a-only"}, "method": {"system.info"}}.Encode(), true
		case "/deployments":
			return url.Values{"artifact": {"orga-firmware@1.0.0"}, "tag": {"a-only"}}.Encode(), true
		case "/devices/{id}/tags":
			return url.Values{"tags": {"pwned"}}.Encode(), false
		case "/devices/{id}/call":
			return url.Values{"method": {"system.info"}}.Encode(), false
		case "/devices/{id}/logs":
			return url.Values{"container": {"c"}}.Encode(), false
		case "/deployments/{id}/abort", "/artifacts/{id}/delete":
			return url.Values{"confirm": {"yes"}}.Encode(), false
		case "/users/{id}/role":
			return url.Values{"role": {"admin"}}.Encode(), false
		case "/users":
			return url.Values{"email": {"new@x.test"}, "role": {"viewer"}}.Encode(), false
		case "/tokens":
			return url.Values{"name": {"new"}}.Encode(), false
		case "/org":
			return url.Values{"org": {"1"}}.Encode(), false
		}
		return "", false
	}
	if allowed {
		switch p {
		case "/devices/preauthorize", "/calls", "/tokens", "/deployments", "/release":
			return `{"nope":1}`, false
		case "/devices/{id}/preauthorize":
			return `{"public_key":"not a key"}`, false
		}
	}
	switch p {
	case "/devices/preauthorize":
		return `{"devices":[{"id":"` + h.aDev + `","public_key":"` + edKey(h.t) + `"}]}`, true
	case "/calls":
		return `{"method":"system.info","devices":["` + h.aDev + `","` + h.aSim1 + `"]}`, true
	case "/deployments":
		return `{"name":"orga-firmware","version":"1.0.0","devices":["` + h.aSim1 + `"]}`, true
	case "/tokens":
		return `{"name":"new"}`, false
	case "/release":
		return `{}`, false
	case "/devices/{id}/preauthorize":
		return `{"public_key":"` + edKey(h.t) + `"}`, false
	case "/devices/{id}/tags":
		return `{"tags":["pwned"]}`, false
	case "/devices/{id}/call":
		return `{"method":"system.info","ttl":"1h"}`, false
	case "/artifacts/{id}/metadata":
		return `{"pwned":true}`, false
	case "/artifacts":
		return "bytes", false
	}
	return "", false
}

// send sends the route's request as a.
func (h *hostile) send(a *actor, rt routeLine, path, body string) hres {
	h.t.Helper()
	if strings.HasSuffix(path, "/events") {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		hdr := map[string]string{}
		return h.doCtx(ctx, a, "GET", path, hdr, nil, 0)
	}
	if rt.surface == "api" {
		hdr := map[string]string{}
		if body != "" {
			hdr["Content-Type"] = "application/json"
			if strings.HasPrefix(path, "/api/v1/artifacts?") || path == "/api/v1/artifacts" {
				hdr["Content-Type"] = "application/octet-stream"
			}
		}
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		return h.do(a, rt.method, path, hdr, rd)
	}
	if rt.method == "GET" {
		return h.do(a, "GET", path, nil, nil)
	}
	f, _ := url.ParseQuery(body)
	return h.form(a, path, f, nil)
}

func (h *hostile) routeMatrix(t *testing.T) {
	routes := readRoutes(t)
	for _, rt := range routes {
		t.Run(rt.surface+" "+rt.method+" "+rt.path, func(t *testing.T) {
			k := kind(rt.path)
			for _, a := range h.actors {
				if rt.path == "/logout" && a.role != "-" && roleRank[a.role] >= roleRank[rt.role] {
					continue // would end the session: its own case below
				}
				h.matrixCase(t, rt, k, a)
			}
		})
	}
	// Logout, last: the sessions end (by design), and come back.
	for _, a := range h.actors[1:] {
		before := h.snapshot()
		r := h.form(a, "/logout", nil, nil)
		if r.status != http.StatusSeeOther || a.cookies["bosun_session"] != "" {
			t.Errorf("%s: logout: %d, cookie %q", a.name, r.status, a.cookies["bosun_session"])
		}
		if after := h.snapshot(); after["web_sessions"] == before["web_sessions"] {
			t.Errorf("%s: logout left the session in web_sessions", a.name)
		}
		h.login(a)
		h.count(func() { h.cases++; h.matrix++ })
	}
}

func (h *hostile) matrixCase(t *testing.T, rt routeLine, k string, a *actor) {
	t.Helper()
	own := a.org == "A"
	foreign := a.org == "B"
	roleOK := roleRank[a.role] >= roleRank[rt.role]
	allowed := own && roleOK && rt.role != "-"
	stateChanging := rt.method != "GET"
	real, missing := h.target(k, rt)
	path := rt.path
	if k != "" {
		id := real
		if allowed && stateChanging {
			id = missing
		}
		path = strings.Replace(path, "{id}", id, 1)
	}
	switch strings.TrimPrefix(path, "/api/v1") {
	case "/ota/versions":
		path += "?name=orga-firmware"
	case "/artifacts":
		if rt.surface == "api" && rt.method == "POST" && !allowed && !(foreign && roleOK) {
			path += "?name=x-art&version=9.9.9"
		}
	}
	body, attack := h.body(rt, allowed)
	if !stateChanging {
		body, attack = "", false
	} else if foreign && roleOK && k == "" && !attack {
		// Another organisation's user on a route that names no object of
		// A (create a user, a token): an invalid form, so that B's own
		// organisation does not change either.
		body, _ = h.body(rt, true)
	}
	before := h.snapshot()
	r := h.send(a, rt, path, body)
	name := a.name + " " + rt.method + " " + path
	h.count(func() {
		h.cases++
		h.matrix++
		if foreign && (k != "" || attack) {
			h.crossTenant++
		}
	})
	if r.status >= 500 {
		t.Errorf("%s: %d\n%.400s", name, r.status, r.body)
	}
	switch {
	case a.role == "-": // anonymous
		switch {
		case rt.surface == "api":
			if r.status != 401 || r.code() != "unauthenticated" {
				t.Errorf("%s: %d %s, want 401 unauthenticated", name, r.status, r.code())
			}
		case rt.path == "/login" && rt.method == "GET":
			r.want(t, 200, "login_token")
		case rt.path == "/login":
			r.want(t, 403, "The login form expired")
		case rt.method == "GET":
			if r.status != 303 || !strings.HasPrefix(r.hdr.Get("Location"), "/login") {
				t.Errorf("%s: %d to %q, want 303 to /login", name, r.status, r.hdr.Get("Location"))
			}
		default:
			r.want(t, 401, "Please log in again")
		}
	case rt.path == "/login":
		if rt.method == "GET" {
			r.want(t, 200, "")
		} else {
			r.want(t, 403, "The login form expired")
		}
	case !roleOK:
		// A role too small: 403, in its own organisation and in another
		// (the API: 403 forbidden, or 404 for another organisation's
		// object: fleet checks the organisation first).
		wantCode := "forbidden"
		switch {
		case rt.surface == "api" && foreign && strings.HasSuffix(rt.path, "/preauthorize"):
			wantCode = "conflict" // the id is taken (docs/api.md): checked before the role
		case rt.surface == "api" && foreign && (k != "" || attack) && r.status == 404:
			wantCode = "not_found" // another organisation's object: checked before the role
		}
		switch {
		case rt.surface == "api" && r.code() != wantCode:
			t.Errorf("%s: %d %s, want 403 forbidden", name, r.status, r.code())
		case rt.surface == "dashboard" && (r.status != 403 || !strings.Contains(r.body, "does not allow this")):
			t.Errorf("%s: %d, want 403 \"does not allow this\"\n%.300s", name, r.status, r.body)
		}
	case allowed:
		if r.status == 401 || r.status == 403 {
			t.Errorf("%s: %d, want allowed\n%.400s", name, r.status, r.body)
		}
		if stateChanging && k != "" && r.status != 404 && !(rt.path == "/api/v1/devices/{id}/preauthorize" && r.status == 400) {
			t.Errorf("%s (no such object): %d, want 404\n%.400s", name, r.status, r.body)
		}
		if !stateChanging && r.status != 200 {
			t.Errorf("%s: %d, want 200\n%.400s", name, r.status, r.body)
		}
	case foreign && k != "":
		// Another organisation's object answers as no object at all.
		if strings.HasSuffix(rt.path, "/preauthorize") {
			// Device ids are global: claiming one another organisation
			// has is refused as taken (docs/api.md), and tells nothing
			// else about it.
			if r.status != 409 || r.code() != "conflict" || !strings.Contains(r.body, "is taken") {
				t.Errorf("%s: %d %s, want 409 conflict \"is taken\"", name, r.status, r.code())
			}
			break
		}
		m := h.send(a, rt, strings.Replace(rt.path, "{id}", missing, 1), body)
		if r.status != m.status || r.code() != m.code() || (r.status != 404 && r.status != 403) {
			t.Errorf("%s: %d %s; an id nobody has: %d %s; want the same 404\n%.300s", name, r.status, r.code(), m.status, m.code(), r.body)
			h.count(func() { h.leaks++ })
		}
		h.leak(t, r, path+body)
	case foreign:
		if attack && r.status/100 == 2 && rt.path != "/fanout" {
			t.Errorf("%s: %d, want a refusal\n%.400s", name, r.status, r.body)
		}
		if !stateChanging && r.status != 200 {
			t.Errorf("%s: %d, want 200\n%.400s", name, r.status, r.body)
		}
		h.leak(t, r, path+body)
	}
	if own && !stateChanging && r.status == 200 && !strings.HasSuffix(path, "/events") {
		for _, m := range []string{"b-dev-", "@b.test", "b-token-", h.bCall} {
			if strings.Contains(r.body, m) {
				h.count(func() { h.leaks++ })
				t.Errorf("%s: shows %q of organisation B", name, m)
			}
		}
	}
	h.unchanged(t, name, before)
}

// --- CSRF and cross-site requests ---

// wouldChange is, for every state-changing dashboard route, a form that
// A's admin could send to change something; each is sent without its
// CSRF token, with a wrong one and from another site, and must change
// nothing.
func (h *hostile) wouldChange(rt routeLine) (string, url.Values) {
	p := rt.path
	v := url.Values{}
	switch p {
	case "/devices":
		v = url.Values{"act": {"decommission-confirmed"}, "id": {h.aDev2}}
	case "/pending":
		v = url.Values{"act": {"accept"}, "id": {h.aPend1 + ":" + h.aPendFP[h.aPend1]}}
	case "/fanout":
		v = url.Values{"tag": {"a-only"}, "method": {"system.info"}}
	case "/deployments":
		v = url.Values{"artifact": {"orga-firmware@1.0.0"}, "devices": {h.aSim2}, "phases": {"100"}}
	case "/users":
		v = url.Values{"email": {"csrf@a.test"}, "role": {"admin"}}
	case "/tokens":
		v = url.Values{"name": {"csrf"}}
	case "/account/password":
		a := h.byName["A/admin"]
		v = url.Values{"current": {a.password}, "new": {"pwned-password-1"}, "again": {"pwned-password-1"}}
	case "/org":
		v = url.Values{"org": {"1"}}
	case "/logout":
	}
	switch {
	case strings.HasPrefix(p, "/devices/{id}/accept"):
		p = strings.Replace(p, "{id}", h.aPend2, 1)
	case strings.HasPrefix(p, "/devices/{id}"):
		p = strings.Replace(p, "{id}", h.aSim1, 1)
		v = url.Values{"tags": {"pwned"}, "method": {"system.info"}, "container": {"c"}}
	case strings.HasPrefix(p, "/artifacts/{id}"):
		p = strings.Replace(p, "{id}", h.aArtifact, 1)
		v.Set("confirm", "yes")
	case strings.HasPrefix(p, "/deployments/{id}"):
		p = strings.Replace(p, "{id}", h.aDeployment, 1)
		v.Set("confirm", "yes")
	case strings.HasPrefix(p, "/users/{id}"):
		p = strings.Replace(p, "{id}", h.byName["A/viewer"].userID, 1)
		v.Set("role", "admin")
	case strings.HasPrefix(p, "/tokens/{id}"):
		p = strings.Replace(p, "{id}", h.byName["A/viewer"].tokenID, 1)
	}
	return p, v
}

func (h *hostile) csrfAndCrossSite(t *testing.T) {
	a := h.byName["A/admin"]
	variants := []struct {
		name string
		csrf func() (string, bool) // the field's value; false: no field
		hdr  map[string]string
		msg  string
	}{
		{"no csrf token", func() (string, bool) { return "", false }, nil, "This form has expired"},
		{"wrong csrf token", func() (string, bool) { return "AAAA" + a.csrf[4:], true }, nil, "This form has expired"},
		{"empty csrf token", func() (string, bool) { return "", true }, nil, "This form has expired"},
		{"wrong csrf header", func() (string, bool) { return "", false }, map[string]string{"X-CSRF-Token": "nope"}, "This form has expired"},
		{"another user's csrf token", func() (string, bool) { return h.byName["A/viewer"].csrf, true }, nil, "This form has expired"},
		{"cross-site", func() (string, bool) { return a.csrf, true }, map[string]string{"Sec-Fetch-Site": "cross-site"}, "came from another site"},
		{"same-site sibling", func() (string, bool) { return a.csrf, true }, map[string]string{"Sec-Fetch-Site": "same-site"}, "came from another site"},
		{"foreign Origin, no Sec-Fetch-Site", func() (string, bool) { return a.csrf, true },
			map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"}, "came from another site"},
		{"public origin over http", func() (string, bool) { return "", false },
			map[string]string{"Sec-Fetch-Site": "", "Origin": publicURL}, "This form has expired"},
	}
	for _, rt := range readRoutes(t) {
		if rt.surface != "dashboard" || rt.method == "GET" || rt.path == "/login" {
			continue
		}
		for _, v := range variants {
			path, form := h.wouldChange(rt)
			before := h.snapshot()
			f := url.Values{}
			for k, vv := range form {
				f[k] = vv
			}
			if tok, ok := v.csrf(); ok {
				f.Set("csrf", tok)
			} else {
				f["csrf"] = nil
				delete(f, "csrf")
			}
			var r hres
			if rt.path == "/artifacts" {
				r = h.multipart(a, f, v.hdr, v.csrf)
			} else {
				hdr := map[string]string{}
				for k, vv := range sameOrigin {
					hdr[k] = vv
				}
				for k, vv := range v.hdr {
					hdr[k] = vv
				}
				r = h.do(a, "POST", path, hdr, strings.NewReader(f.Encode()))
			}
			name := v.name + ": POST " + path
			want := 403
			msg := v.msg
			if rt.role == "super" && !strings.Contains(msg, "another site") {
				msg = "does not allow this" // the role is checked before the token
			}
			if r.status != want || !strings.Contains(r.body, msg) {
				t.Errorf("%s: %d, want %d %q\n%.300s", name, r.status, want, msg, r.body)
			}
			h.unchanged(t, name, before)
			h.count(func() { h.cases++ })
		}
	}
	// Cross-site login (login CSRF): right credentials, no login token or
	// a foreign origin.
	b := &actor{name: "login-csrf", role: "-", ip: "127.0.0.40", cookies: map[string]string{}}
	before := h.snapshot()
	h.form(b, "/login", url.Values{"email": {a.email}, "password": {a.password}}, nil).want(t, 403, "The login form expired")
	page := h.do(b, "GET", "/login", nil, nil)
	tok := loginTokenRE.FindStringSubmatch(page.body)[1]
	h.form(b, "/login", url.Values{"email": {a.email}, "password": {a.password}, "login_token": {tok}},
		map[string]string{"Sec-Fetch-Site": "cross-site"}).want(t, 403, "came from another site")
	h.unchanged(t, "cross-site login", before)
	if b.cookies["bosun_session"] != "" {
		t.Errorf("cross-site login got a session cookie")
	}
	h.count(func() { h.cases += 2 })

	// The API ignores cookies: a browser's session does not authenticate
	// it, so a cross-site page cannot use the API with the user's cookie.
	before = h.snapshot()
	c := &actor{name: "cookie only", role: "-", ip: a.ip, cookies: a.cookies}
	r := h.do(c, "POST", "/api/v1/devices/"+h.aSim1+"/reject", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, nil)
	if r.status != 401 || r.code() != "unauthenticated" {
		t.Errorf("API with the session cookie only: %d %s, want 401 unauthenticated", r.status, r.code())
	}
	h.unchanged(t, "API with a cookie", before)
	// No CORS: neither the API nor the event streams tell a browser it may
	// show another site their answers.
	for _, p := range []string{"/events", "/api/v1/events", "/api/v1/devices", "/devices"} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r := h.doCtx(ctx, a, "GET", p, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, nil, 0)
		cancel()
		if v := r.hdr.Get("Access-Control-Allow-Origin") + r.hdr.Get("Access-Control-Allow-Credentials"); v != "" {
			t.Errorf("GET %s from another site: CORS headers %q", p, v)
		}
		h.count(func() { h.cases++ })
	}
	// A cross-site websocket to the device endpoint is refused at the
	// handshake (the dashboard has no websocket; its live updates are
	// server-sent events, checked above).
	for _, origin := range []string{"https://evil.example", "null"} {
		req, _ := http.NewRequest("GET", h.c.URL+"/v1/device", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")))
		req.Header.Set("Sec-WebSocket-Protocol", "bosun.v1")
		req.Header.Set("Origin", origin)
		req.Header.Set("Cookie", "bosun_session="+a.cookies["bosun_session"])
		res, err := h.client(a.ip).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site websocket (Origin %s): %d, want 403", origin, res.StatusCode)
		}
		h.count(func() { h.cases++ })
	}
}

// multipart posts the artifact upload form with csrf first (or not at all).
func (h *hostile) multipart(a *actor, f url.Values, hdr map[string]string, csrf func() (string, bool)) hres {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if tok, ok := csrf(); ok {
		mw.WriteField("csrf", tok)
	}
	mw.WriteField("name", "csrf-art")
	mw.WriteField("version", "1.0.0")
	fw, _ := mw.CreateFormFile("file", "bundle.tar.gz")
	fw.Write(tarGz(h.t, map[string]string{"VERSION": "1.0.0\n"}))
	mw.Close()
	all := map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": mw.FormDataContentType()}
	for k, v := range hdr {
		all[k] = v
	}
	return h.do(a, "POST", "/artifacts", all, &buf)
}

// --- cookies ---

func (h *hostile) cookieFlags(t *testing.T) {
	a := &actor{name: "cookies", role: "-", ip: "127.0.0.41", cookies: map[string]string{}}
	u := h.byName["A/viewer"]
	// The login form's cookie is SameSite=Strict; the session's is Lax
	// (documented in login.Cookies.SetSession: a link from elsewhere opens
	// the dashboard logged in), which is safe because no GET changes
	// anything (the route matrix proves it: every GET there is
	// snapshotted) and every POST needs the CSRF token and a same-origin
	// request.
	check := func(r hres, name string) {
		t.Helper()
		sameSite := map[string]string{"bosun_login": "SameSite=Strict", "bosun_session": "SameSite=Lax"}[name]
		var found bool
		for _, line := range r.hdr.Values("Set-Cookie") {
			if !strings.HasPrefix(line, name+"=") {
				continue
			}
			found = true
			for _, flag := range []string{"HttpOnly", sameSite, "Secure"} {
				if !strings.Contains(line, flag) {
					t.Errorf("cookie %s lacks %s (public URL %s): %s", name, flag, publicURL, line)
				}
			}
		}
		if !found {
			t.Errorf("no cookie %s in %v", name, r.hdr.Values("Set-Cookie"))
		}
		h.count(func() { h.cases++ })
	}
	check(h.do(a, "GET", "/login", nil, nil), "bosun_login")
	page := h.do(a, "GET", "/login", nil, nil)
	tok := loginTokenRE.FindStringSubmatch(page.body)[1]
	r := h.form(a, "/login", url.Values{"email": {u.email}, "password": {u.password}, "login_token": {tok}}, nil)
	check(r, "bosun_session")
	// The secret is never in a page or a URL.
	if s := a.cookies["bosun_session"]; s == "" || strings.Contains(h.do(a, "GET", "/", nil, nil).body, s) ||
		strings.Contains(r.hdr.Get("Location"), s) {
		t.Errorf("the session secret shows in a page or redirect")
	}
	// Logging in again replaces the session (a planted one is worthless).
	old := a.cookies["bosun_session"]
	page = h.do(a, "GET", "/login", nil, nil)
	tok = loginTokenRE.FindStringSubmatch(page.body)[1]
	h.form(a, "/login", url.Values{"email": {u.email}, "password": {u.password}, "login_token": {tok}}, nil).want(t, 303, "")
	stale := &actor{name: "stale session", role: "-", ip: a.ip, cookies: map[string]string{"bosun_session": old}}
	if r := h.do(stale, "GET", "/devices", nil, nil); r.status != 303 {
		t.Errorf("the session replaced by a new login still works: %d", r.status)
	}
	h.count(func() { h.cases++ })
}

// --- bulk actions with own and foreign ids ---

func (h *hostile) bulkMixed(t *testing.T) {
	a := h.byName["A/admin"]
	b := h.byName["B/admin"]
	// Devices page: tag and decommission A's device together with B's.
	// All or nothing: nothing changes, A's own device neither.
	for _, f := range []url.Values{
		{"act": {"tag-add"}, "bulk_tag": {"mixed"}, "id": {h.aDev, h.bDev}},
		{"act": {"tag-remove"}, "bulk_tag": {"a-only"}, "id": {h.aDev, h.bDev}},
		{"act": {"decommission-confirmed"}, "id": {h.aDev2, h.bDev}},
		{"act": {"decommission-confirmed"}, "id": {h.bDev, h.aDev2}},
	} {
		before := h.snapshot()
		r := h.form(a, "/devices", f, nil)
		if r.status != 404 && r.status != 422 {
			t.Errorf("bulk %v with B's device: %d, want a refusal\n%.300s", f, r.status, r.body)
		}
		h.unchanged(t, "bulk "+f.Encode(), before)
		h.count(func() { h.cases++; h.crossTenant++ })
	}
	// B's admin names A's devices: same.
	before := h.snapshot()
	f := url.Values{"act": {"decommission-confirmed"}, "id": {h.bDev, h.aDev}}
	r := h.form(b, "/devices", f, nil)
	if r.status/100 == 2 || r.status == 303 {
		t.Errorf("B decommissions A's device in bulk: %d", r.status)
	}
	h.leak(t, r, f.Encode())
	h.unchanged(t, "B bulk decommission", before)
	h.count(func() { h.cases++; h.crossTenant++ })

	// Pending page: B's operator accepts and rejects A's pending keys in a
	// batch with an id nobody has: nothing of A changes.
	for _, act := range []string{"accept", "reject"} {
		before := h.snapshot()
		f := url.Values{"act": {act}, "id": {h.aPend1 + ":" + h.aPendFP[h.aPend1], h.aPend2 + ":" + h.aPendFP[h.aPend2], "no-such-dev:" + h.aPendFP[h.aPend1]}}
		r := h.form(h.byName["B/operator"], "/pending", f, nil)
		if r.status != 404 {
			t.Errorf("B %s of A's pending keys: %d, want 404\n%.300s", act, r.status, r.body)
		}
		h.unchanged(t, "B pending "+act, before)
		h.count(func() { h.cases++; h.crossTenant++ })
	}
	// A's operator decides a batch with B's device first, then A's own:
	// B's stops the batch before anything is decided (404), so A's own
	// pending keys stay pending too.
	before = h.snapshot()
	f = url.Values{"act": {"reject"}, "id": {h.bDev + ":" + h.aPendFP[h.aPend1], h.aPend1 + ":" + h.aPendFP[h.aPend1]}}
	r = h.form(h.byName["A/operator"], "/pending", f, nil)
	if r.status != 404 {
		t.Errorf("A rejects B's device and its own: %d, want 404\n%.300s", r.status, r.body)
	}
	h.unchanged(t, "A pending reject with B's first", before)
	h.count(func() { h.cases++; h.crossTenant++ })
	// The same batch with A's own key first: see ownFirst.
	h.ownFirst(t)

	// API bulk preauthorize naming A's device: refused whole, nothing
	// written, B's own new device neither.
	before = h.snapshot()
	body := `{"devices":[{"id":"b-new-1","public_key":"` + edKey(t) + `"},{"id":"` + h.aDev + `","public_key":"` + edKey(t) + `"}]}`
	r = h.api(b, "POST", "/devices/preauthorize", body)
	if r.status != 409 || r.code() != "conflict" {
		t.Errorf("bulk preauthorize with A's id: %d %s, want 409 conflict", r.status, r.code())
	}
	h.leak(t, r, body)
	h.unchanged(t, "bulk preauthorize", before)
	h.count(func() { h.cases++; h.crossTenant++ })
	// API fan-out naming A's devices with B's own.
	before = h.snapshot()
	body = `{"method":"system.info","devices":["` + h.bDev + `","` + h.aSim1 + `"]}`
	r = h.api(b, "POST", "/calls", body)
	if r.status != 404 && r.status != 400 {
		t.Errorf("B fans out to A's device: %d\n%.300s", r.status, r.body)
	}
	h.leak(t, r, body)
	h.unchanged(t, "fan-out with A's device", before)
	h.count(func() { h.cases++; h.crossTenant++ })
}

// ownFirst is A's operator rejecting its own pending key and then B's
// device in one batch: the pending page checks every device of a batch
// before deciding any, so the whole batch is refused (404, telling
// nothing about B's device) and A's own key stays pending too.
func (h *hostile) ownFirst(t *testing.T) {
	before := h.snapshot()
	f := url.Values{"act": {"reject"}, "id": {h.aPend2 + ":" + h.aPendFP[h.aPend2], h.bDev + ":" + h.aPendFP[h.aPend2]}}
	r := h.form(h.byName["A/operator"], "/pending", f, nil)
	if r.status != 404 || !strings.Contains(r.body, "Not found") {
		t.Errorf("A rejects its own key then B's device: %d, want 404\n%.300s", r.status, r.body)
	}
	h.unchanged(t, "pending batch [A's own, B's]", before)
	h.count(func() { h.cases++; h.crossTenant++ })
}

// --- events ---

// eventsIsolation listens as A's viewer and B's admin (dashboard and API
// streams) while A's operator calls A's device: A hears call.finished,
// B hears nothing of it.
func (h *hostile) eventsIsolation(t *testing.T) {
	type stream struct {
		name string
		got  chan string
	}
	listen := func(a *actor, path string) stream {
		s := stream{name: a.name + " " + path, got: make(chan string, 1)}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", h.c.URL+path, nil)
		if strings.HasPrefix(path, "/api/") {
			req.Header.Set("Authorization", "Bearer "+a.token)
		} else {
			req.Header.Set("Cookie", "bosun_session="+a.cookies["bosun_session"])
		}
		res, err := h.client(a.ip).Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", s.name, err, res)
		}
		go func() {
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body) // until the deadline
			s.got <- string(b)
		}()
		return s
	}
	streams := []stream{
		listen(h.byName["A/viewer"], "/events"), listen(h.byName["A/viewer"], "/api/v1/events"),
		listen(h.byName["B/admin"], "/events"), listen(h.byName["B/admin"], "/api/v1/events"),
	}
	time.Sleep(500 * time.Millisecond) // let the subscriptions start; the streams end at their deadline
	h.api(h.byName["A/operator"], "POST", "/devices/"+h.aSim1+"/call", `{"method":"system.info"}`).want(t, 200, "")
	for i, s := range streams {
		body := <-s.got
		switch {
		case i < 2 && !strings.Contains(body, h.aSim1):
			t.Errorf("%s: A's own event did not arrive:\n%.500s", s.name, body)
		case i >= 2 && strings.Contains(body, "a-dev"):
			h.count(func() { h.leaks++ })
			t.Errorf("%s: saw A's event:\n%.500s", s.name, body)
		}
		h.count(func() {
			h.cases++
			if i >= 2 {
				h.crossTenant++
			}
		})
	}
}

// --- filters ---

// hostileValues are SQL metacharacters, LIKE wildcards, NUL bytes and
// invalid UTF-8: a filter must match them literally (nothing here names
// a device) or refuse them with 400, never answer 500 or more rows.
var hostileValues = []string{
	"' OR '1'='1", "'; DROP TABLE devices; --", `" OR ""="`, ") OR (1=1", "%", "_", "%%", `\`, `\%`, "a%",
	"\x00", "a\x00b", "%00", "\xff\xfe", "$1", "*/", "'::text", strings.Repeat("'", 200),
}

func (h *hostile) filters(t *testing.T) {
	a := h.byName["A/admin"]
	b := h.byName["B/admin"]
	params := []struct {
		path   string
		params []string
	}{
		{"/devices", []string{"status", "online", "tag", "q", "page"}},
		{"/audit", []string{"actor", "action", "target", "before", "after"}},
		{"/pending", []string{"q"}},
		{"/artifacts", []string{"name"}},
		{"/deployments", []string{"state"}},
		{"/login", []string{"next"}},
		{"/devices/" + h.aDev, []string{"q"}},
		{"/api/v1/devices", []string{"status", "online", "tag", "q", "limit", "offset"}},
		{"/api/v1/calls", []string{"device", "status", "limit"}},
		{"/api/v1/audit", []string{"actor", "action", "target", "limit"}},
		{"/api/v1/artifacts", []string{"name"}},
		{"/api/v1/deployments", []string{"state", "limit"}},
		{"/api/v1/ota/versions", []string{"name"}},
		{"/api/v1/devices/" + h.aDev + "/ota/reports", []string{"limit"}},
	}
	for _, p := range params {
		for _, name := range p.params {
			for _, v := range hostileValues {
				for _, who := range []*actor{a, b} {
					before := h.snapshot()
					path := p.path + "?" + url.Values{name: {v}}.Encode()
					if strings.HasSuffix(p.path, "/ota/versions") && name != "name" {
						path += "&name=orga-firmware"
					}
					if strings.HasPrefix(p.path, "/devices/"+h.aDev) || strings.HasPrefix(p.path, "/api/v1/devices/"+h.aDev) {
						if who == b {
							continue
						}
					}
					r := h.do(who, "GET", path, nil, nil)
					what := fmt.Sprintf("%s GET %s %s=%q", who.name, p.path, name, v)
					switch {
					case r.status >= 500:
						t.Errorf("%s: %d\n%.300s", what, r.status, r.body)
					case r.status != 200 && r.status != 400:
						t.Errorf("%s: %d, want 200 or 400\n%.300s", what, r.status, r.body)
					case strings.HasPrefix(p.path, "/api/") && r.status == 400 && r.code() != "invalid_request":
						t.Errorf("%s: 400 %s, want invalid_request", what, r.code())
					}
					if who == b {
						h.leak(t, r, path)
					}
					// A value that names no device lists none.
					if r.status == 200 && (p.path == "/devices" || p.path == "/api/v1/devices") && (name == "q" || name == "tag") &&
						(strings.Contains(r.body, "a-dev-1") || strings.Contains(r.body, "a-sim-1")) {
						t.Errorf("%s: the filter matched devices:\n%.300s", what, r.body)
					}
					h.unchanged(t, what, before)
					h.count(func() {
						h.cases++
						if who == b {
							h.crossTenant++
						}
					})
				}
			}
		}
	}
}

// idPaths are object paths whose id holds a NUL byte, invalid UTF-8 or
// SQL: each is 404 (or 400), never 500.
var idPaths = []string{"/devices/%s", "/calls/%s", "/deployments/%s", "/api/v1/devices/%s", "/api/v1/devices/%s/keys",
	"/api/v1/devices/%s/ota/reports", "/api/v1/calls/%s", "/api/v1/artifacts/%s", "/api/v1/deployments/%s"}

func (h *hostile) badIDs(t *testing.T) {
	for _, who := range []*actor{h.byName["A/admin"], h.byName["B/admin"]} {
		for _, p := range idPaths {
			for _, v := range []string{"%00", "a%00b", "%FF%FE", "%27%20OR%20%271%27%3D%271", "1%3B%20DROP%20TABLE%20devices"} {
				before := h.snapshot()
				path := fmt.Sprintf(p, v)
				r := h.do(who, "GET", path, nil, nil)
				if r.status != 404 && r.status != 400 {
					t.Errorf("%s GET %s: %d, want 404 or 400\n%.300s", who.name, path, r.status, r.body)
				}
				h.unchanged(t, "GET "+path, before)
				h.count(func() { h.cases++ })
			}
		}
	}
}

// --- path traversal ---

func (h *hostile) traversal(t *testing.T) {
	a := h.byName["A/operator"]
	bundle := tarGz(t, map[string]string{"VERSION": "1.0.0\n"})
	for _, name := range []string{"../../etc/passwd", "..", "../x", "a/../../b", "/abs", `a\..\b`, "a/b", ".hidden", "%2e%2e%2f", "a\x00b", "a b"} {
		for _, version := range []string{"1.0.0", "1.0.0/../../x"} {
			if version != "1.0.0" && name != "..%2f" && name != "../x" {
				continue
			}
			before := h.snapshot()
			q := url.Values{"name": {name}, "version": {version}}.Encode()
			r := h.do(a, "POST", "/api/v1/artifacts?"+q, map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(bundle))
			if r.status != 400 || r.code() != "invalid_request" {
				t.Errorf("API upload name %q version %q: %d %s, want 400 invalid_request\n%.300s", name, version, r.status, r.code(), r.body)
			}
			h.unchanged(t, "upload "+q, before)
			// The dashboard's upload form.
			before = h.snapshot()
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			mw.WriteField("csrf", a.csrf)
			mw.WriteField("name", name)
			mw.WriteField("version", version)
			fw, _ := mw.CreateFormFile("file", "../../"+name)
			fw.Write(bundle)
			mw.Close()
			r = h.do(a, "POST", "/artifacts", map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": mw.FormDataContentType()}, &buf)
			if r.status != 422 && r.status != 400 {
				t.Errorf("dashboard upload name %q: %d, want 400 or 422\n%.300s", name, r.status, r.body)
			}
			h.unchanged(t, "dashboard upload "+q, before)
			h.count(func() { h.cases += 2 })
		}
	}
	// Bundle entries that climb out, are absolute or link out: the cloud
	// stores a bundle as opaque bytes named by their SHA-256 and never
	// unpacks it (the device does, and refuses such entries: see
	// device/internal/slots), so the upload is accepted and nothing is
	// written anywhere but data/artifacts/<sha256>.
	dataDir := filepath.Join(h.c.Dir, "data")
	filesBefore := dataFiles(dataDir)
	bad := tarGz(t, map[string]string{"../../../escape.txt": "x", "/tmp/bosun-hostile-abs.txt": "x", "link": "symlink:../../../etc", "VERSION": "6.6.6\n"})
	r := h.do(a, "POST", "/api/v1/artifacts?name=evil&version=6.6.6", map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(bad))
	r.want(t, 201, "")
	for _, p := range []string{filepath.Join(dataDir, "..", "..", "..", "escape.txt"), filepath.Join(dataDir, "escape.txt"), "/tmp/bosun-hostile-abs.txt"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the upload wrote %s", p)
		}
	}
	after := dataFiles(dataDir)
	sum := sha256.Sum256(bad)
	want := append(slices.Clip(filesBefore), "artifacts/sha256/"+hex.EncodeToString(sum[:]))
	slices.Sort(want)
	if !slices.Equal(after, want) {
		t.Errorf("the data dir holds %v after the upload, want %v", after, want)
	}
	h.api(a, "DELETE", "/artifacts/"+jsonID(r.body), "").want(t, 204, "")
	h.count(func() { h.cases++ })
}

// dataFiles lists the files under dir, sorted, relative to it.
func dataFiles(dir string) []string {
	var files []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	slices.Sort(files)
	return files
}

func jsonID(body string) string {
	var v struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal([]byte(body), &v)
	return strconv.FormatInt(v.ID, 10)
}

// --- login brute force ---

// bruteForce guesses A's viewer's password from one address: after the
// documented 5 failures (fleet.MaxLoginFailuresPerAccountAddr) the pair is
// refused with 429 and Retry-After, the right password included, and no
// session starts; a forged X-Forwarded-For does not get around it (the
// cloud trusts no proxy here); from another address the user still logs
// in (one email is never locked from everywhere).
func (h *hostile) bruteForce(t *testing.T) {
	u := h.byName["A/viewer"]
	att := &actor{name: "brute", role: "-", ip: "127.0.0.50", cookies: map[string]string{}}
	ctx := context.Background()
	failures := func() (n int) {
		h.db.QueryRow(ctx, `SELECT count(*) FROM web_login_failures WHERE email = $1`, u.email).Scan(&n)
		return n
	}
	sessions := func() (n int) {
		h.db.QueryRow(ctx, `SELECT count(*) FROM web_sessions s JOIN users x ON x.id = s.user_id WHERE x.email = $1`, u.email).Scan(&n)
		return n
	}
	before := h.snapshot()
	for i := range 5 {
		h.tryLogin(att, u.email, fmt.Sprintf("guess-%d", i), nil).want(t, 401, "Wrong email or password")
		h.count(func() { h.cases++ })
	}
	if n := failures(); n != 5 {
		t.Errorf("%d failures recorded, want 5", n)
	}
	s0 := sessions()
	for i, pw := range []string{"guess-6", u.password, u.password} {
		hdr := map[string]string{}
		if i == 2 {
			hdr["X-Forwarded-For"] = "203.0.113.7"
		}
		r := h.tryLogin(att, u.email, pw, hdr)
		if r.status != 429 || r.hdr.Get("Retry-After") == "" || !strings.Contains(r.body, "Too many failed logins") {
			t.Errorf("attempt %d during lockout: %d Retry-After %q, want 429\n%.300s", 6+i, r.status, r.hdr.Get("Retry-After"), r.body)
		}
		if att.cookies["bosun_session"] != "" {
			t.Errorf("a session during lockout")
		}
		h.count(func() { h.cases++ })
	}
	if n := failures(); n != 5 {
		t.Errorf("refused attempts were counted: %d failures, want 5", n)
	}
	if sessions() != s0 {
		t.Errorf("a session started during lockout")
	}
	h.unchanged(t, "brute force", before)
	other := &actor{name: "elsewhere", role: "-", ip: "127.0.0.51", cookies: map[string]string{}}
	if r := h.tryLogin(other, u.email, u.password, nil); r.status != 303 {
		t.Errorf("the user from another address: %d, want 303 (never locked everywhere)", r.status)
	}
	h.count(func() { h.cases++ })
}
