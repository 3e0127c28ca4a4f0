package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/chromedp/chromedp"
)

// chromium returns the browser to drive: $BOSUN_TEST_CHROMIUM, else
// /usr/bin/chromium. A missing browser skips the test, or fails it under
// CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("BOSUN_TEST_CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	msg := "no Chromium at " + bin + " (set BOSUN_TEST_CHROMIUM; apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing browser is a failure)")
	}
	t.Skip(msg)
	return ""
}

// newChrome starts a headless Chromium with a fresh profile.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// artifacts is where screenshots go: $BOSUN_TEST_ARTIFACTS/<test>, or a
// temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if base := os.Getenv("BOSUN_TEST_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		os.WriteFile(filepath.Join(os.TempDir(), "bosun-browser-fail.html"), []byte(html), 0o644)
		t.Fatalf("%s: %v\npage:\n%.4000s", step, err, html)
	}
	t.Logf("step passed: %s", step)
}

func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestBrowser drives the dashboard in a real Chromium against an
// in-process cloud and a test device that answers like the demo stack.
// (e2e/browser_test.go runs the same story against real processes.)
func TestBrowser(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "admin@example.com", fleet.RoleAdmin, "")
	dir := artifacts(t)
	base := s.URL()

	run(t, ctx, "log in",
		chromedp.Navigate(base+"/pending"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "admin@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
	)
	shot(t, ctx, dir, "login")
	run(t, ctx, "pending page after login",
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("no-pending")),
		chromedp.WaitVisible(chromedp.CSS("#live.on")), // the event stream is open
		chromedp.Evaluate[chromedp.Void](`window.bosunNoReload = true`),
	)

	d := demoDevice(t, s, "dev-1")
	run(t, ctx, "the pending device appears live without reload",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="dev-1"]`)),
	)
	still := value(t, ctx, "no reload", chromedp.Evaluate[bool](`window.bosunNoReload === true`))
	if !still {
		t.Fatal("the page reloaded")
	}
	shot(t, ctx, dir, "pending")

	run(t, ctx, "accept",
		chromedp.Click(chromedp.CSS(`button[value="accept:dev-1"]`)),
		chromedp.WaitVisible(chromedp.ID("no-pending")),
	)
	announce(t, d)
	run(t, ctx, "it turns online",
		chromedp.Navigate(base+"/devices"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="dev-1"] .dot.on`)),
	)
	shot(t, ctx, dir, "devices")

	run(t, ctx, "open the device and call system.info from the console",
		chromedp.Click(chromedp.CSS(`tr[data-device="dev-1"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`select#method`)), // the methods the device announced
		chromedp.SetValue(chromedp.CSS(`select#method`), "system.info"),
		chromedp.Click(chromedp.ID("call")),
		chromedp.WaitVisible(chromedp.ID("call-result")),
	)
	result := value(t, ctx, "console result", chromedp.Text(chromedp.ID("call-result")))
	if !strings.Contains(result, "demo-host") || !strings.Contains(result, "succeeded") {
		t.Fatalf("console result: %s", result)
	}
	run(t, ctx, "containers table lists the demo container when asked",
		chromedp.Click(chromedp.ID("list-containers")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-container="bosun-demo"]`)),
	)
	shot(t, ctx, dir, "device")

	run(t, ctx, "its logs show its lines",
		chromedp.Click(chromedp.CSS(`tr[data-container="bosun-demo"] button.logs`)),
		chromedp.WaitVisible(chromedp.ID("log-lines")),
	)
	lines := value(t, ctx, "log lines", chromedp.Text(chromedp.ID("log-lines")))
	if !strings.Contains(lines, "hello from bosun-demo") {
		t.Fatalf("log lines: %s", lines)
	}
	shot(t, ctx, dir, "logs")

	for _, p := range []string{"/", "/audit", "/users", "/tokens"} {
		name := strings.Trim(p, "/")
		if name == "" {
			name = "overview"
		}
		run(t, ctx, "show "+p, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("main")))
		shot(t, ctx, dir, name)
	}
	run(t, ctx, "phone-sized overview",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/devices/dev-1"),
		chromedp.WaitVisible(chromedp.ID("device-id")),
	)
	shot(t, ctx, dir, "device-phone")
	run(t, ctx, "log out",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	run(t, ctx, "logged out for good",
		chromedp.Navigate(base+"/devices"),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	loc := value(t, ctx, "location", chromedp.Location())
	if !strings.Contains(loc, "/login") {
		t.Fatalf("after logout /devices is at %s", loc)
	}
	t.Logf("screenshots in %s", dir)
}

// TestBrowserAcceptsTheKeyOfItsRow: a device with two pending keys shows
// two rows; the accept button of one row accepts that row's key (the
// browser posts the fingerprint it showed), and the page says which.
func TestBrowserAcceptsTheKeyOfItsRow(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "op@example.com", fleet.RoleOperator, "")
	dir := artifacts(t)
	k1, k2, k3 := twoPendingKeys(t, s)

	run(t, ctx, "log in",
		chromedp.Navigate(s.URL()+"/pending"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "op@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS(`button[data-fingerprint="`+k2+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[data-fingerprint="`+k3+`"]`)),
	)
	shot(t, ctx, dir, "pending-two-keys")
	run(t, ctx, "accept K2 by its row",
		chromedp.Click(chromedp.CSS(`button[data-fingerprint="`+k2+`"]`)),
		chromedp.WaitVisible(chromedp.ID("no-pending")),
	)
	flash := value(t, ctx, "flash", chromedp.Text(chromedp.CSS(".flash")))
	if flash != "Accepted tq-1 ("+k2+")." {
		t.Fatalf("flash %q", flash)
	}
	want := map[string]string{k1: "revoked", k2: "accepted", k3: "rejected"}
	if got := keyStatus(t, s, "tq-1"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}

// TestBrowserAcceptsARejectedKey: the pending page lists a rejected key
// under "Rejected keys" with who rejected it; its Accept button accepts it
// again, the page says so, the section empties and the device's next
// connection is accepted.
func TestBrowserAcceptsARejectedKey(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "op@example.com", fleet.RoleOperator, "")
	dir := artifacts(t)
	bg := context.Background()
	d := cloudtest.MustConnect(t, s, "dev-2", cloudtest.DeviceOptions{})
	fp := fingerprint(d)
	op := s.Actor(t, "ann@example.com", fleet.RoleOperator, "")
	if _, err := s.Service().AcceptKey(bg, op, "dev-2", fp); err != nil {
		t.Fatal(err)
	}
	if err := s.Service().Reject(bg, op, "dev-2"); err != nil {
		t.Fatal(err)
	}
	d.WaitClosed(t, 5*time.Second)

	row := `#rejected tr[data-rejected="dev-2"]`
	run(t, ctx, "log in and see the rejected key",
		chromedp.Navigate(s.URL()+"/pending"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "op@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS(row)),
	)
	text := value(t, ctx, "rejected row", chromedp.Text(chromedp.CSS(row)))
	for _, want := range []string{"dev-2", fp, "ann@example.com"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the rejected row lacks %q: %q", want, text)
		}
	}
	shot(t, ctx, dir, "pending-rejected")
	run(t, ctx, "phone-sized",
		chromedp.EmulateViewport(390, 844),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(row)),
	)
	if w := value(t, ctx, "page width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("the pending page is %d px wide at 390 px", w)
	}
	shot(t, ctx, dir, "pending-rejected-phone")
	run(t, ctx, "accept it back",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS(row+` button[data-accept-rejected="`+fp+`"]`)),
		chromedp.WaitVisible(chromedp.ID("no-rejected")),
	)
	flash := value(t, ctx, "flash", chromedp.Text(chromedp.CSS(".flash")))
	if flash != "Accepted dev-2 ("+fp+")." {
		t.Fatalf("flash %q", flash)
	}
	if got := keyStatus(t, s, "dev-2"); got[fp] != "accepted" {
		t.Fatalf("keys %v", got)
	}
	back := cloudtest.MustConnect(t, s, "dev-2", cloudtest.DeviceOptions{Key: d.Key})
	if back.Registration.Status != "accepted" {
		t.Fatalf("the device came back %+v", back.Registration)
	}
	run(t, ctx, "it turns online",
		chromedp.Navigate(s.URL()+"/devices"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="dev-2"] .dot.on`)),
	)
}
