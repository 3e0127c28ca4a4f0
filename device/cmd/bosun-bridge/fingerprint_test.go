package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/keys"
)

// TestFingerprintCommand builds bosun-bridge and runs `bosun-bridge
// fingerprint` as an operator would: it prints the id, algorithm and
// fingerprint of the key in the data dir, and refuses, making nothing, when
// there is no key yet.
func TestFingerprintCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bosun-bridge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	run := func() (string, error) {
		cmd := exec.Command(bin, "fingerprint", "--data-dir", dir, "--device-id", "pi.kitchen")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run()
	if err == nil || !strings.Contains(out, "no device key in "+dir+" yet") {
		t.Fatalf("without a key: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("fingerprint wrote %d files into the data dir", len(entries))
	}
	key, _, err := keys.LoadOrGenerate(filepath.Join(dir, datadir.KeyFile), keys.AlgEd25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := keys.Fingerprint(key.Public())
	out, err = run()
	if err != nil {
		t.Fatalf("with a private key only: %v\n%s", err, out)
	}
	for _, want := range []string{"device_id   pi.kitchen\n", "alg         ed25519\n", "fingerprint " + fp + "\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if err := keys.SavePublic(filepath.Join(dir, datadir.PublicKeyFile), key.Public()); err != nil {
		t.Fatal(err)
	}
	if out2, err := run(); err != nil || out2 != out {
		t.Fatalf("with the public key file: %v\n%s\nwant\n%s", err, out2, out)
	}
}
