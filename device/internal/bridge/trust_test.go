package bridge

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/keys"
)

func edKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func b64(t *testing.T, k crypto.PublicKey) string {
	t.Helper()
	der, err := keys.PublicDER(k)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestLearnTrust: an announced key set is kept only when it is valid and
// holds the key that signs the session; a refused one changes neither the
// trusted keys nor the file, and loadTrust prefers the file to the pins.
func TestLearnTrust(t *testing.T) {
	pinned, next := edKey(t), edKey(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakDER, _ := json.Marshal(base64.StdEncoding.EncodeToString(rsaDER(t, &weak.PublicKey)))
	dir := t.TempDir()
	b := &Bridge{opts: Options{DataDir: dir, CloudKey: pinned}, log: slog.New(slog.DiscardHandler)}
	trust, err := loadTrust(b.opts)
	if err != nil || len(trust) != 1 {
		t.Fatalf("loadTrust without a file = %v, %v; want the pin", trust, err)
	}
	b.trust.Store(&trust)
	file := filepath.Join(dir, datadir.CloudKeysFile)

	for _, tc := range []struct{ name, params, want string }{
		{"without the session's key", `{"keys":["` + b64(t, next) + `"]}`, "does not hold the key that signs this session"},
		{"no keys", `{"keys":[]}`, "0 keys"},
		{"five keys", `{"keys":["` + strings.Repeat(b64(t, edKey(t))+`","`, 4) + b64(t, pinned) + `"]}`, "5 keys"},
		{"twice the same key", `{"keys":["` + b64(t, pinned) + `","` + b64(t, pinned) + `"]}`, "twice"},
		{"unpadded base64", `{"keys":["` + strings.TrimRight(b64(t, pinned), "=") + `"]}`, "base64"},
		{"weak rsa", `{"keys":[` + string(weakDER) + `,"` + b64(t, pinned) + `"]}`, "key 1 of the set"},
		{"unknown member", `{"keys":["` + b64(t, pinned) + `"],"expires":1}`, "expires"},
		{"not an object", `["x"]`, ""},
	} {
		err := b.learnTrust(json.RawMessage(tc.params), pinned)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
		if _, serr := os.Stat(file); !os.IsNotExist(serr) {
			t.Fatalf("%s: %s written", tc.name, file)
		}
		if got := *b.trust.Load(); len(got) != 1 || !pinned.(ed25519.PublicKey).Equal(got[0]) {
			t.Fatalf("%s: trusted keys changed to %d keys", tc.name, len(got))
		}
	}

	// The window: the pinned key and the next one, kept in the file.
	if err := b.learnTrust(json.RawMessage(`{"keys":["`+b64(t, pinned)+`","`+b64(t, next)+`"]}`), pinned); err != nil {
		t.Fatal(err)
	}
	if got := *b.trust.Load(); len(got) != 2 {
		t.Fatalf("trusted %d keys, want 2", len(got))
	}
	reloaded, err := loadTrust(Options{DataDir: dir, CloudKey: edKey(t)})
	if err != nil || len(reloaded) != 2 || !next.(ed25519.PublicKey).Equal(reloaded[1]) {
		t.Fatalf("loadTrust after the announcement = %d keys, %v; want the announced two, not the pin", len(reloaded), err)
	}
	// A file that does not parse stops the bridge rather than fall back.
	if err := os.WriteFile(file, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTrust(b.opts); err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Fatalf("loadTrust of a corrupt file = %v", err)
	}
}

func rsaDER(t *testing.T, k *rsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
