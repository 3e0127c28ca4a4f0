package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowser is the dashboard story in a real Chromium against the real
// dev stack (bosun-cloud, bosun-bridge, bosun-worker, PostgreSQL, Podman):
// log in → the pending dev device appears live without reload → accept →
// it turns online → open the device (the method picker lists what the
// bridge announced) → call system.info from the console and see the result
// → List containers shows the Podman demo container → its logs show its
// lines → log out. Every page is
// screenshotted into the artefacts directory.
func TestBrowser(t *testing.T) {
	ctx := newChrome(t)
	demo := Require(t, EnvDemo, "the Podman demo container")
	s := StartStack(t, Options{NeedEngine: true})
	email, password, _ := s.Credentials(t)
	dir := filepath.Join(Artifacts(t), "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := s.Device
	row := `tr[data-device="` + dev + `"]`

	step(t, ctx, "log in",
		chromedp.Navigate(s.URL+"/pending"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	screenshot(t, ctx, dir, "login")
	step(t, ctx, "the pending page is live",
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("#pending-form")),
		chromedp.WaitVisible(chromedp.CSS("#live.on")),
		chromedp.Evaluate[chromedp.Void](`window.bosunNoReload = true`),
	)
	// The dev device may have registered already; then it is listed at
	// once. Either way no reload happens from here on.
	step(t, ctx, "the pending dev device appears without reload",
		chromedp.WaitVisible(chromedp.CSS(row)),
	)
	if ok := val(t, ctx, "no reload", chromedp.Evaluate[bool](`window.bosunNoReload === true`)); !ok {
		t.Fatal("the pending page reloaded")
	}
	screenshot(t, ctx, dir, "pending")
	step(t, ctx, "accept",
		chromedp.Click(chromedp.CSS(`button[value="accept:`+dev+`"]`)),
		chromedp.WaitVisible(chromedp.ID("no-pending")),
	)
	step(t, ctx, "it turns online",
		chromedp.Navigate(s.URL+"/devices"),
		chromedp.WaitVisible(chromedp.CSS(row+` .dot.on`)),
	)
	screenshot(t, ctx, dir, "devices")
	// The picker lists the methods the bridge announced in its state
	// report, which follows the acceptance.
	Eventually(t, 30*time.Second, "the device announces its methods", func() error {
		out, err := s.CLI(context.Background(), "device", dev, "--json")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"methods"`) || !strings.Contains(out, `"system.info"`) {
			return fmt.Errorf("no methods in the inventory yet")
		}
		return nil
	})
	step(t, ctx, "open the device; the method picker lists what the device announced",
		chromedp.Click(chromedp.CSS(row+` a`)),
		chromedp.WaitReady(chromedp.CSS(`select#method option[value="system.info"]`)),
		chromedp.SetValue(chromedp.CSS(`select#method`), "system.info"),
		chromedp.Click(chromedp.ID("call")),
		chromedp.WaitVisible(chromedp.ID("call-result")),
	)
	res := val(t, ctx, "console result", chromedp.Text(chromedp.ID("call-result")))
	if !strings.Contains(res, "succeeded") || !strings.Contains(res, `"hostname"`) {
		t.Fatalf("system.info in the console: %s", res)
	}
	t.Log("step passed: system.info result shown")
	step(t, ctx, "the containers table lists the demo container when asked",
		chromedp.Click(chromedp.ID("list-containers")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-container="`+demo+`"]`)),
	)
	screenshot(t, ctx, dir, "device")
	step(t, ctx, "its logs",
		chromedp.Click(chromedp.CSS(`tr[data-container="`+demo+`"] button.logs`)),
		chromedp.WaitVisible(chromedp.CSS("#log-lines .logline")),
	)
	if lines := val(t, ctx, "log lines", chromedp.Text(chromedp.ID("log-lines"))); strings.TrimSpace(lines) == "" {
		t.Fatal("no log lines")
	}
	screenshot(t, ctx, dir, "logs")
	for _, p := range []string{"/", "/audit", "/users", "/tokens"} {
		name := strings.Trim(p, "/")
		if name == "" {
			name = "overview"
		}
		step(t, ctx, "show "+p, chromedp.Navigate(s.URL+p), chromedp.WaitVisible(chromedp.CSS("main")))
		screenshot(t, ctx, dir, name)
	}
	step(t, ctx, "log out",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.Navigate(s.URL+"/devices"),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	t.Logf("screenshots in %s", dir)
}

// newChrome starts Debian's Chromium headless with a fresh profile;
// BOSUN_TEST_CHROMIUM names the binary. Missing, it skips the test, or
// fails it under CI=true.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv(EnvChromium)
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		os.Setenv(EnvChromium, "")
		Require(t, EnvChromium, "Chromium ("+bin+" not found; apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
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
	ctx, cancelT := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

func step(t *testing.T, ctx context.Context, name string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage:\n%.4000s", name, err, html)
	}
	t.Logf("step passed: %s", name)
}

func val[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := val(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100)) // 100: PNG
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
