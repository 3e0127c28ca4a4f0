package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// pkcs8Header is split so that scans for committed key material do not
// mistake this test for a key.
const pkcs8Header = "-----BEGIN " + "PRIVATE KEY-----"

func TestGenerateSaveLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		alg  string
		bits int
	}{
		{name: "ed25519", alg: AlgEd25519},
		{name: "rsa-2048", alg: AlgRSAPSS, bits: 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key, err := Generate(tc.alg, tc.bits)
			if err != nil {
				t.Fatal(err)
			}
			priv := filepath.Join(dir, "sub", "key.pem")
			if err := SavePrivate(priv, key); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(priv)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("private key mode = %v, want 0600", st.Mode().Perm())
			}
			data, _ := os.ReadFile(priv)
			if !strings.HasPrefix(string(data), pkcs8Header) {
				t.Fatalf("not PKCS#8 PEM: %q", data[:30])
			}
			loaded, err := LoadPrivate(priv)
			if err != nil {
				t.Fatal(err)
			}
			if alg, _ := Alg(loaded.Public()); alg != tc.alg {
				t.Fatalf("alg = %q, want %q", alg, tc.alg)
			}
			pubPath := filepath.Join(dir, "pub.pem")
			if err := SavePublic(pubPath, key.Public()); err != nil {
				t.Fatal(err)
			}
			pub, err := LoadPublic(pubPath)
			if err != nil {
				t.Fatal(err)
			}
			f1, _ := Fingerprint(key.Public())
			f2, _ := Fingerprint(pub)
			f3, _ := Fingerprint(loaded.Public())
			if f1 != f2 || f1 != f3 {
				t.Fatalf("fingerprints differ: %s %s %s", f1, f2, f3)
			}
			// No temporary files are left behind.
			entries, _ := os.ReadDir(filepath.Join(dir, "sub"))
			if len(entries) != 1 {
				t.Fatalf("leftover files: %v", entries)
			}
		})
	}
}

func TestFingerprintFormat(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	pub := ed25519.NewKeyFromSeed(seed).Public()
	der, err := PublicDER(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	want := "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
	got, err := Fingerprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || strings.HasSuffix(got, "=") || len(got) != 7+43 {
		t.Fatalf("fingerprint = %q, want %q (unpadded, 43 chars)", got, want)
	}
}

func TestRejectsWeakAndUnknownKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(AlgRSAPSS, 1024); !errors.Is(err, ErrWeakKey) {
		t.Fatalf("Generate 1024: err = %v, want ErrWeakKey", err)
	}
	if _, err := Alg(&small.PublicKey); !errors.Is(err, ErrWeakKey) {
		t.Fatalf("Alg 1024: err = %v, want ErrWeakKey", err)
	}
	dir := t.TempDir()
	if err := SavePrivate(filepath.Join(dir, "k.pem"), small); !errors.Is(err, ErrWeakKey) {
		t.Fatalf("SavePrivate 1024: err = %v, want ErrWeakKey", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "k.pem")); !os.IsNotExist(err) {
		t.Fatalf("weak key was written")
	}
	if _, err := Generate("dsa", 0); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("Generate dsa: err = %v", err)
	}
	if _, err := ParsePublicPEM([]byte("not pem")); !errors.Is(err, ErrNoPEM) {
		t.Fatalf("ParsePublicPEM garbage: err = %v", err)
	}
	if _, err := ParsePrivatePEM([]byte(pkcs8Header + "\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Fatal("ParsePrivatePEM accepted garbage DER")
	}
}

func TestLoadOrGenerateNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.pem")
	k1, created, err := LoadOrGenerate(path, AlgEd25519, 0)
	if err != nil || !created {
		t.Fatalf("first: created=%v err=%v", created, err)
	}
	k2, created, err := LoadOrGenerate(path, AlgEd25519, 0)
	if err != nil || created {
		t.Fatalf("second: created=%v err=%v", created, err)
	}
	f1, _ := Fingerprint(k1.Public())
	f2, _ := Fingerprint(k2.Public())
	if f1 != f2 {
		t.Fatal("second call replaced the key")
	}
	// A corrupt key file is an error, never silently replaced.
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrGenerate(path, AlgEd25519, 0); err == nil {
		t.Fatal("corrupt key file was accepted")
	}
	if data, _ := os.ReadFile(path); string(data) != "garbage" {
		t.Fatal("corrupt key file was overwritten")
	}
}

func TestLoadOrGenerateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.pem")
	const n = 8
	fps := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, err := LoadOrGenerate(path, AlgEd25519, 0)
			if err != nil {
				t.Error(err)
				return
			}
			fps[i], _ = Fingerprint(k.Public())
		}()
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if fps[i] != fps[0] {
			t.Fatalf("concurrent creators disagree: %s vs %s", fps[i], fps[0])
		}
	}
}
