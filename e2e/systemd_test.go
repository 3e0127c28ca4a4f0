package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvSystemdAnalyze names systemd-analyze for the unit tests;
// scripts/test.sh installs Debian's systemd package when it is missing.
const EnvSystemdAnalyze = "BOSUN_TEST_SYSTEMD_ANALYZE"

// systemdUnits are the unit files of device/systemd, installed under
// /etc/systemd/system.
var systemdUnits = []string{"bosun-bridge.service", "bosun-worker@.service", "bosun-ota.service"}

// installUnits lays out an installed device under root as
// docs/device-install.md describes it: the binaries in /usr/local/bin, the
// units in /etc/systemd/system, the sysusers.d file, /etc/bosun with the
// settings (env) and the pinned cloud key.
func installUnits(tb testing.TB, root, bin string, env string) {
	tb.Helper()
	repo := Root(tb)
	copyFile := func(src, dst string, mode os.FileMode) {
		tb.Helper()
		data, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			tb.Fatal(err)
		}
	}
	for _, b := range []string{"bosun-bridge", "bosun-worker", "hello-worker", "bosun-ota"} {
		copyFile(filepath.Join(bin, b), filepath.Join(root, "usr/local/bin", b), 0o755)
	}
	for _, u := range systemdUnits {
		copyFile(filepath.Join(repo, "device/systemd", u), filepath.Join(root, "etc/systemd/system", u), 0o644)
	}
	copyFile(filepath.Join(repo, "device/systemd/bosun.sysusers"), filepath.Join(root, "usr/lib/sysusers.d/bosun.conf"), 0o644)
	if err := os.MkdirAll(filepath.Join(root, "etc/bosun"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/bosun/bridge.env"), []byte(env), 0o600); err != nil {
		tb.Fatal(err)
	}
	copyFile(writeCloudPublicKey(tb, tb.TempDir()), filepath.Join(root, "etc/bosun/cloud_public.pem"), 0o644)
}

// systemdAnalyze returns the path of systemd-analyze: $BOSUN_TEST_SYSTEMD_ANALYZE,
// else the one on PATH; without one the test skips, or fails under CI=true.
func systemdAnalyze(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(EnvSystemdAnalyze); p != "" {
		return p
	}
	if p, err := exec.LookPath("systemd-analyze"); err == nil {
		return p
	}
	return Require(tb, EnvSystemdAnalyze, "systemd-analyze (Debian package systemd)")
}

// TestSystemdUnitsVerify checks the units with systemd-analyze verify, as
// installed in a root directory that holds the system's own units (what
// the bridge's and workers' dependencies name) and the binaries: no error
// and no warning (an unknown or misspelt directive is a warning). A worker
// instance whose program is not installed is refused, so the check can
// fail.
func TestSystemdUnitsVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	root := t.TempDir()
	system := "/usr/lib/systemd/system"
	if _, err := os.Stat(system); err != nil {
		t.Fatalf("no %s to verify against: %v", system, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", system, filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v\n%s", system, err, out)
	}
	bin := Build(t, "./device/cmd/bosun-bridge", "./device/cmd/bosun-worker", "./device/examples/hello-worker", "./device/cmd/bosun-ota")
	installUnits(t, root, bin, "BOSUN_CLOUD_URL=wss://bosun.example.com/v1/device\n")

	verify := func(units ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, sa, append([]string{"--root=" + root, "--man=no", "verify"}, units...)...).CombinedOutput()
		return string(out), err
	}
	out, err := verify("/etc/systemd/system/bosun-bridge.service", "bosun-worker@bosun-worker.service", "bosun-worker@hello-worker.service", "bosun-ota.service")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = verify("bosun-worker@not-installed.service")
	if err == nil || !strings.Contains(out, "/usr/local/bin/not-installed") {
		t.Errorf("verify of a worker that is not installed: %v\n%s", err, out)
	}
}
