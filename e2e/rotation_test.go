package e2e

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

// TestCloudKeyRotation rotates the cloud key of ./run-dev.sh's stack with
// the real processes (docs/security.md, "Rotating the cloud key"): dev-1
// pins key A only. A cloud signing with A announces A and B (--cloud-trust):
// dev-1 keeps both in its data dir. The cloud then signs with B and
// announces B alone: dev-1 connects, answers calls, and keeps B alone. A
// cloud signing with the retired A is refused from then on (bad_signature)
// and gets no call through.
func TestCloudKeyRotation(t *testing.T) {
	s := StartStack(t, Options{})
	ctx := context.Background()
	s.acceptDevice(t)

	keyA := filepath.Join(s.Keys, "cloud_private.pem")
	a, err := keys.LoadPrivate(keyA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.Generate(keys.AlgEd25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyB := filepath.Join(dir, "cloud_b.pem")
	if err := keys.SavePrivate(keyB, b); err != nil {
		t.Fatal(err)
	}
	trustAB := writeKeySet(t, filepath.Join(dir, "trust-ab.pem"), a.Public(), b.Public())
	trustB := writeKeySet(t, filepath.Join(dir, "trust-b.pem"), b.Public())
	announced := filepath.Join(s.Dir, s.Device, "cloud_keys.pem")

	// cloud runs one replica on the stack's address with the given key and
	// announced set, in place of the one before it.
	n := 0
	cloud := func(key, trust string) {
		t.Helper()
		if n == 0 {
			s.stopComponent(t, "cloud")
		} else {
			s.stopComponent(t, fmt.Sprintf("cloud-r%d", n))
		}
		n++
		env := []string{"BOSUN_LISTEN=" + s.Listen, "BOSUN_DATA_DIR=" + filepath.Join(s.Dir, "cloud"),
			"BOSUN_CLOUD_KEY=" + key, "BOSUN_CLOUD_TRUST=" + trust}
		s.startProc(t, fmt.Sprintf("cloud-r%d", n), env, s.Bin("bosun-cloud"), "serve")
	}
	callWorks := func(what string) {
		t.Helper()
		Eventually(t, 60*time.Second, what, func() error {
			_, err := s.CLI(ctx, "call", s.Device, "system.info")
			return err
		})
	}

	// 1. The window opens: the cloud signs with A and announces A and B.
	cloud(keyA, trustAB)
	callWorks("system.info through the cloud signing with A")
	Eventually(t, 30*time.Second, "dev-1 keeps A and B", func() error {
		return sameKeys(announced, a.Public(), b.Public())
	})

	// 2. The cloud signs with B and announces B alone.
	cloud(keyB, trustB)
	callWorks("system.info through the cloud signing with B")
	Eventually(t, 30*time.Second, "dev-1 keeps B alone", func() error {
		return sameKeys(announced, b.Public())
	})

	// 3. The retired key A is trusted no more.
	bridgeLog := filepath.Join(s.Dir, "logs", "bridge.log")
	before := strings.Count(readFile(t, bridgeLog), "reason=bad_signature")
	cloud(keyA, "")
	Eventually(t, 60*time.Second, "dev-1 refuses the challenge signed by A", func() error {
		if got := strings.Count(readFile(t, bridgeLog), "reason=bad_signature"); got <= before {
			return fmt.Errorf("%d bad_signature refusals, want more than %d", got, before)
		}
		return nil
	})
	if out, err := s.CLI(ctx, "call", s.Device, "system.info"); err == nil || !strings.Contains(err.Error(), "-32000") {
		t.Fatalf("a call through the cloud signing with the retired key: %s %v; want -32000 device offline", out, err)
	}
	if err := sameKeys(announced, b.Public()); err != nil {
		t.Fatalf("after the retired key's challenge: %v", err)
	}
}

func writeKeySet(t *testing.T, path string, set ...crypto.PublicKey) string {
	t.Helper()
	data, err := keys.MarshalPublicPEMs(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameKeys says whether the PEM file at path holds exactly want, in order.
func sameKeys(path string, want ...crypto.PublicKey) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	wantPEM, err := keys.MarshalPublicPEMs(want)
	if err != nil {
		return err
	}
	if !bytes.Equal(data, wantPEM) {
		return fmt.Errorf("%s holds\n%s\nwant\n%s", path, data, wantPEM)
	}
	return nil
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
