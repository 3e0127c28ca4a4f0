package envelope

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json (and the RSA test key if it is missing)")

const vectorsFile = "testdata/vectors.json"

// vectorFile is testdata/vectors.json: everything an independent
// implementation needs to reproduce each envelope, and what it must get.
type vectorFile struct {
	Comment []string `json:"comment"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name string `json:"name"`
	Alg  string `json:"alg"`
	// Exactly one key: the Ed25519 seed in hex, or the name of a PEM file
	// in testdata holding a PKCS#8 RSA key.
	Ed25519SeedHex string `json:"ed25519_seed_hex,omitempty"`
	RSAKeyFile     string `json:"rsa_key_file,omitempty"`
	PublicKeySPKI  string `json:"public_key_spki_base64"`

	Signer    string    `json:"signer"`
	Audience  string    `json:"audience"`
	Direction Direction `json:"direction"`
	Session   string    `json:"session"`
	Seq       uint64    `json:"seq"`
	TS        int64     `json:"ts"`
	// Payload is the payload's exact bytes (as a JSON string: it is UTF-8).
	Payload string `json:"payload"`

	SignedHex string `json:"signed_hex"`
	Sig       string `json:"sig"`
	// Wire is the envelope as Seal writes it (compact, meta keys in order).
	Wire string `json:"wire"`
	// Deterministic: Ed25519 signatures are, so Sig and Wire must be
	// reproduced byte for byte; RSA-PSS ones are salted, so Sig must verify
	// and a fresh signature differs.
	Deterministic bool `json:"deterministic"`
}

// vectorInputs are the inputs of testdata/vectors.json; -update recomputes
// the outputs from them.
var vectorInputs = []vector{
	{
		Name: "ed25519-device-to-cloud", Alg: keys.AlgEd25519,
		Ed25519SeedHex: hex.EncodeToString(testSeed),
		Signer:         "dev-7f3a", Audience: "cloud", Direction: DeviceToCloud,
		Session: testSession, Seq: 7, TS: 1763877539123,
		Payload: `{"jsonrpc":"2.0","id":7,"method":"containers.list","params":{}}`,
	},
	{
		// The first message of every session: cloud_to_device seq 1.
		Name: "ed25519-auth-challenge", Alg: keys.AlgEd25519,
		Ed25519SeedHex: hex.EncodeToString(testSeed),
		Signer:         "cloud", Audience: AudienceAny, Direction: CloudToDevice,
		Session: "AAECAwQFBgcICQoLDA0ODw", Seq: 1, TS: 1763877539000,
		Payload: `{"jsonrpc":"2.0","method":"auth.challenge","params":{"cloud_id":"cloud"}}`,
	},
	{
		// Pins the two escapes meta may need and that the payload is signed
		// byte for byte: whitespace, non-ASCII and escapes left as sent; and
		// the extremes of the integers: seq MaxSeq (16 digits), ts 0.
		Name: "ed25519-escapes-and-exact-payload", Alg: keys.AlgEd25519,
		Ed25519SeedHex: hex.EncodeToString(testSeed),
		Signer:         `dev-"quoted"\back-ü`, Audience: "cloud", Direction: DeviceToCloud,
		Session: testSession, Seq: MaxSeq, TS: 0,
		Payload: "{ \"jsonrpc\": \"2.0\", \"id\": \"a\",\n  \"result\": {\"note\": \"café \\u00e9 ☕\", \"n\": 1.50} }",
	},
	{
		Name: "rsa-pss-sha256-device-to-cloud", Alg: keys.AlgRSAPSS,
		RSAKeyFile: filepath.Base(rsaKeyFile),
		Signer:     "dev-rsa", Audience: "cloud", Direction: DeviceToCloud,
		Session: testSession, Seq: 2, TS: 1763877539123,
		Payload: `{"jsonrpc":"2.0","id":8,"method":"state.report","params":{"hostname":"pi-1"}}`,
	},
}

// vectorKey returns the signing key a vector names.
func vectorKey(tb testing.TB, v *vector) crypto.Signer {
	tb.Helper()
	switch {
	case v.Ed25519SeedHex != "":
		seed, err := hex.DecodeString(v.Ed25519SeedHex)
		if err != nil || len(seed) != ed25519.SeedSize {
			tb.Fatalf("%s: bad seed", v.Name)
		}
		return ed25519.NewKeyFromSeed(seed)
	case v.RSAKeyFile == filepath.Base(rsaKeyFile):
		return testRSA(tb)
	}
	tb.Fatalf("%s: no key", v.Name)
	return nil
}

func (v *vector) header() Header {
	return Header{Audience: v.Audience, Direction: v.Direction, Session: v.Session, Seq: v.Seq}
}

func (v *vector) opener(pub crypto.PublicKey) *Opener {
	self := v.Audience
	if self == AudienceAny {
		self = "dev-42"
	}
	return &Opener{
		Self: self, AllowAnyAudience: v.Audience == AudienceAny,
		Direction: v.Direction, Session: v.Session,
		Key: func(string) (crypto.PublicKey, error) { return pub, nil },
		// The vectors are old: open them at their own time.
		Window: NewReplayWindow(0), Now: fixedNow(time.UnixMilli(v.TS)),
	}
}

// regenerateVectors writes testdata/vectors.json (and the RSA key, if it is
// missing) from vectorInputs.
func regenerateVectors(t *testing.T) {
	if _, err := os.Stat(rsaKeyFile); os.IsNotExist(err) {
		k, err := keys.Generate(keys.AlgRSAPSS, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.SavePrivate(rsaKeyFile, k); err != nil {
			t.Fatal(err)
		}
		t.Logf("generated %s", rsaKeyFile)
	}
	f := vectorFile{Comment: []string{
		"Bosun envelope v2 test vectors; see docs/protocol.md.",
		"Generated by `go test ./pkg/envelope -run TestVectors -update`; inputs live in vectors_test.go.",
		"signed_hex is the exact byte string that is signed; payload is the payload's exact bytes.",
		"deterministic=false (RSA-PSS): sig verifies, but a fresh signature over signed_hex differs.",
	}}
	for _, in := range vectorInputs {
		v := in
		key := vectorKey(t, &v)
		der, err := keys.PublicDER(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		v.PublicKeySPKI = base64.StdEncoding.EncodeToString(der)
		s, err := NewSealer(v.Signer, key)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := s.SealAt(v.header(), []byte(v.Payload), time.UnixMilli(v.TS))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		m, _, err := Peek(wire, 0)
		if err != nil {
			t.Fatal(err)
		}
		v.SignedHex = hex.EncodeToString(SignedBytes(m, []byte(v.Payload)))
		v.Sig = m.Sig
		v.Wire = string(wire)
		v.Deterministic = v.Alg == keys.AlgEd25519
		f.Vectors = append(f.Vectors, v)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", vectorsFile)
}

// TestVectors checks testdata/vectors.json against this implementation. It
// regenerates nothing unless -update is given.
func TestVectors(t *testing.T) {
	if *update {
		regenerateVectors(t)
	}
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (regenerate with go test -run TestVectors -update)", err)
	}
	var f vectorFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) != len(vectorInputs) {
		t.Fatalf("%d vectors in %s, %d inputs in the test (run -update)", len(f.Vectors), vectorsFile, len(vectorInputs))
	}
	for i := range f.Vectors {
		v := &f.Vectors[i]
		t.Run(v.Name, func(t *testing.T) {
			key := vectorKey(t, v)
			der, _ := keys.PublicDER(key.Public())
			if got := base64.StdEncoding.EncodeToString(der); got != v.PublicKeySPKI {
				t.Errorf("public key = %s, want %s", got, v.PublicKeySPKI)
			}
			alg, _ := keys.Alg(key.Public())
			m := Meta{V: 2, Signer: v.Signer, Audience: v.Audience, Direction: v.Direction,
				Session: v.Session, Seq: v.Seq, TS: v.TS, Alg: alg}
			signed := SignedBytes(m, []byte(v.Payload))
			if got := hex.EncodeToString(signed); got != v.SignedHex {
				t.Errorf("signed bytes differ\n got %s\nwant %s", got, v.SignedHex)
			}

			// The vector's signature verifies over the vector's signed bytes
			// with the bare primitive, independently of Open.
			sig, err := b64.DecodeString(v.Sig)
			if err != nil {
				t.Fatal(err)
			}
			switch pub := key.Public().(type) {
			case ed25519.PublicKey:
				if !ed25519.Verify(pub, signed, sig) {
					t.Error("ed25519 signature does not verify")
				}
			case *rsa.PublicKey:
				d := sha256.Sum256(signed)
				if err := rsa.VerifyPSS(pub, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}); err != nil {
					t.Errorf("rsa-pss signature does not verify: %v", err)
				}
			}

			// A fresh SealAt reproduces the wire: byte for byte when the
			// signature is deterministic, all but the signature otherwise.
			s, err := NewSealer(v.Signer, key)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := s.SealAt(v.header(), []byte(v.Payload), time.UnixMilli(v.TS))
			if err != nil {
				t.Fatal(err)
			}
			fm, _, err := Peek(fresh, 0)
			if err != nil {
				t.Fatal(err)
			}
			if v.Deterministic {
				if string(fresh) != v.Wire {
					t.Errorf("wire differs\n got %s\nwant %s", fresh, v.Wire)
				}
			} else {
				if fm.Sig == v.Sig {
					t.Error("RSA-PSS signature repeated: the salt is not random")
				}
				if got := strings.Replace(string(fresh), fm.Sig, v.Sig, 1); got != v.Wire {
					t.Errorf("wire (signature aside) differs\n got %s\nwant %s", got, v.Wire)
				}
			}
			if got := hex.EncodeToString(SignedBytes(fm, []byte(v.Payload))); got != v.SignedHex {
				t.Errorf("fresh signed bytes differ")
			}

			// encoding/json reads the same meta (the struct tags match the
			// wire, and MaxSeq survives a JSON number).
			var env struct {
				Meta    Meta            `json:"meta"`
				Payload json.RawMessage `json:"payload"`
			}
			if err := json.Unmarshal([]byte(v.Wire), &env); err != nil {
				t.Fatal(err)
			}
			if pm, _, err := Peek([]byte(v.Wire), 0); err != nil || env.Meta != pm || pm.Seq != v.Seq {
				t.Errorf("encoding/json reads meta %+v, Peek %+v, %v", env.Meta, pm, err)
			}

			// And the vector's wire opens.
			got, err := v.opener(key.Public()).Open([]byte(v.Wire))
			if err != nil {
				t.Fatalf("Open(vector wire): %v", err)
			}
			if string(got.Payload) != v.Payload || got.Meta.Sig != v.Sig || got.Meta.Seq != v.Seq {
				t.Errorf("opened %+v", got)
			}
		})
	}
}

// TestVectorKeyIsCommitted guards against a key regenerated by accident: the
// committed RSA key is 2048 bits and the Ed25519 key is RFC 8032's.
func TestVectorKeyIsCommitted(t *testing.T) {
	if n := testRSA(t).N.BitLen(); n != 2048 {
		t.Errorf("RSA test key has %d bits", n)
	}
	want := "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	if got := hex.EncodeToString(testEd.Public().(ed25519.PublicKey)); got != want {
		t.Errorf("ed25519 public key %s, want RFC 8032's %s", got, want)
	}
}
