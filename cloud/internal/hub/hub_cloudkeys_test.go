package hub

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// TestCloudKeysParams: a cloud refuses to announce a key set that would
// lock its devices out (without its own signing key) or that devices would
// refuse; a good set is the keys in order, in padded standard base64.
func TestCloudKeysParams(t *testing.T) {
	gen := func() crypto.PublicKey {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	own, next := gen(), gen()
	for _, tc := range []struct {
		name string
		set  []crypto.PublicKey
		want string
	}{
		{"without the signing key", []crypto.PublicKey{next}, "signing key"},
		{"five keys", []crypto.PublicKey{own, gen(), gen(), gen(), gen()}, "at most 4"},
		{"twice the same", []crypto.PublicKey{own, own}, "twice"},
	} {
		if _, err := cloudKeysParams(own, tc.set); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	raw, err := cloudKeysParams(own, []crypto.PublicKey{own, next})
	if err != nil {
		t.Fatal(err)
	}
	var p rpcproto.AuthCloudKeysParams
	if err := json.Unmarshal(raw, &p); err != nil || len(p.Keys) != 2 || !strings.HasPrefix(p.Keys[0], "MCowBQYDK2VwAyEA") || !strings.HasSuffix(p.Keys[1], "=") {
		t.Fatalf("params = %s, %v", raw, err)
	}
}
