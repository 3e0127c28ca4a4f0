package keys

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"strings"
	"testing"
)

// FuzzParse feeds the PEM and DER key parsers (the cloud key file a device
// pins, the key set of a rotation, device and cloud private keys, the DER
// key a registration presents) arbitrary bytes. No panic; every error is
// the package's ("keys: ..." or "key N of the set: ..."); what they accept
// is a usable key (Alg accepts it: Ed25519, or RSA of at least MinRSABits)
// that survives Marshal and Parse unchanged; a set has 1 to MaxKeySet keys
// and no duplicates; a private key signs what its public key verifies.
func FuzzParse(f *testing.F) {
	ed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	edPub, _ := MarshalPublicPEM(ed.Public())
	edPriv, _ := MarshalPrivatePEM(ed)
	edDER, _ := PublicDER(ed.Public())
	f.Add(edPub)
	f.Add(edPriv)
	f.Add(edDER)
	f.Add(append(append([]byte{}, edPub...), edPub...))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("junk\n-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})

	msg := []byte("fuzz")
	checkErr := func(t *testing.T, what string, err error) {
		if s := err.Error(); !strings.HasPrefix(s, "keys: ") && !strings.HasPrefix(s, "key ") {
			t.Fatalf("%s: error %q is not the package's", what, s)
		}
	}
	samePub := func(a, b crypto.PublicKey) bool {
		e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
		return ok && e.Equal(b)
	}
	usable := func(t *testing.T, what string, pub crypto.PublicKey) {
		if _, err := Alg(pub); err != nil {
			t.Fatalf("%s accepted a key Alg refuses: %v", what, err)
		}
		if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() < MinRSABits {
			t.Fatalf("%s accepted RSA-%d", what, k.N.BitLen())
		}
		b, err := MarshalPublicPEM(pub)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePublicPEM(b)
		if err != nil || !samePub(pub, again) {
			t.Fatalf("%s: round trip %v", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if pub, err := ParsePublicPEM(data); err != nil {
			checkErr(t, "ParsePublicPEM", err)
		} else {
			usable(t, "ParsePublicPEM", pub)
		}
		if pub, err := ParsePublicDER(data); err != nil {
			checkErr(t, "ParsePublicDER", err)
		} else {
			usable(t, "ParsePublicDER", pub)
			if der, _ := PublicDER(pub); FingerprintDER(der) != mustFingerprint(t, pub) {
				t.Fatal("fingerprints differ")
			}
		}
		if set, err := ParsePublicPEMs(data); err != nil {
			checkErr(t, "ParsePublicPEMs", err)
		} else {
			if len(set) < 1 || len(set) > MaxKeySet {
				t.Fatalf("a set of %d keys", len(set))
			}
			for i, k := range set {
				usable(t, "ParsePublicPEMs", k)
				for _, o := range set[:i] {
					if samePub(k, o) {
						t.Fatal("a key twice in the set")
					}
				}
			}
			b, err := MarshalPublicPEMs(set)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParsePublicPEMs(b)
			if err != nil || len(again) != len(set) {
				t.Fatalf("set round trip: %d keys, %v", len(again), err)
			}
		}
		if key, err := ParsePrivatePEM(data); err != nil {
			checkErr(t, "ParsePrivatePEM", err)
		} else {
			usable(t, "ParsePrivatePEM", key.Public())
			b, err := MarshalPrivatePEM(key)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParsePrivatePEM(b)
			if err != nil || !samePub(key.Public(), again.Public()) {
				t.Fatalf("private round trip: %v", err)
			}
			if e, ok := key.(ed25519.PrivateKey); ok {
				if !ed25519.Verify(e.Public().(ed25519.PublicKey), msg, ed25519.Sign(e, msg)) {
					t.Fatal("an accepted Ed25519 key does not verify its own signature")
				}
			}
		}
	})
}

func mustFingerprint(t *testing.T, pub crypto.PublicKey) string {
	fp, err := Fingerprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}
