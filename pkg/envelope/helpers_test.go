package envelope

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

// Fixed inputs shared by the tests: the RFC 8032 test 1 Ed25519 key (so an
// independent implementation can check its key handling against the RFC),
// the session and seq of the protocol document's example.
var (
	testSeed, _ = hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	testEd      = ed25519.NewKeyFromSeed(testSeed)
	testT0      = time.UnixMilli(1763877539123)
	testSession = "Jm3r0qYx1kQmC0r3bXc9Vw"
	testPayload = []byte(`{"jsonrpc":"2.0","id":7,"method":"containers.list","params":{}}`)
)

// testSeq is the seq of deviceHeader. Not 1, so that a test can tell it from
// the first seq of a session, and a single digit, so that the tests' string
// replacements ("seq":7) are unambiguous.
const testSeq = 7

const rsaKeyFile = "testdata/rsa2048.pem"

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsaErr  error
)

// testRSA returns the committed RSA-2048 test key. It is generated only by
// `go test -run TestVectors -update` when missing, never silently.
func testRSA(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	rsaOnce.Do(func() {
		var data []byte
		data, rsaErr = os.ReadFile(filepath.FromSlash(rsaKeyFile))
		if rsaErr != nil {
			return
		}
		var k crypto.Signer
		if k, rsaErr = keys.ParsePrivatePEM(data); rsaErr == nil {
			var ok bool
			if rsaKey, ok = k.(*rsa.PrivateKey); !ok {
				rsaErr = errors.New("not an RSA key")
			}
		}
	})
	if rsaErr != nil {
		tb.Fatalf("loading %s (regenerate with go test -run TestVectors -update): %v", rsaKeyFile, rsaErr)
	}
	return rsaKey
}

// testKeys is the KeyFunc of the tests: "dev-1" is Ed25519, "dev-rsa" RSA.
func testKeys(tb testing.TB) KeyFunc {
	rk := testRSA(tb)
	return func(signer string) (crypto.PublicKey, error) {
		switch signer {
		case "dev-1", "cloud":
			return testEd.Public(), nil
		case "dev-rsa":
			return rk.Public(), nil
		}
		return nil, ErrUnknownSigner
	}
}

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

// newOpener returns the cloud's Opener for testSession at testT0, with a
// fresh window.
func newOpener(tb testing.TB) *Opener {
	return &Opener{
		Self:      "cloud",
		Direction: DeviceToCloud,
		Session:   testSession,
		Key:       testKeys(tb),
		Window:    NewReplayWindow(0),
		Now:       fixedNow(testT0),
	}
}

// deviceHeader is the header of a device's message to the cloud in
// testSession, with seq testSeq.
func deviceHeader() Header {
	return seqHeader(testSeq)
}

// seqHeader is deviceHeader with seq.
func seqHeader(seq uint64) Header {
	return Header{Audience: "cloud", Direction: DeviceToCloud, Session: testSession, Seq: seq}
}

// sealTest seals payload from "dev-1" at testT0.
func sealTest(tb testing.TB, h Header, payload []byte) []byte {
	tb.Helper()
	s, err := NewSealer("dev-1", testEd)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := s.SealAt(h, payload, testT0)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// sealUnchecked signs m and payload as they are, skipping every check Seal
// makes, to build envelopes a correct sender would never produce.
func sealUnchecked(tb testing.TB, key crypto.Signer, m Meta, payload []byte) []byte {
	tb.Helper()
	sig, err := sign(key, m.Alg, SignedBytes(m, payload))
	if err != nil {
		tb.Fatal(err)
	}
	m.Sig = b64.EncodeToString(sig)
	return appendWire(nil, &m, payload)
}

// testMeta is the meta of sealTest(deviceHeader(), ...), unsigned.
func testMeta() Meta {
	return Meta{
		V: Version, Signer: "dev-1", Audience: "cloud", Direction: DeviceToCloud,
		Session: testSession, Seq: testSeq, TS: testT0.UnixMilli(),
		Alg: keys.AlgEd25519,
	}
}
