package session_test

import (
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
)

var reasonRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// checkRefusal asserts the shape of a refused handshake: a snake_case
// reason, a protocol-violation close and a close text a websocket close
// frame can carry (at most 123 bytes).
func checkRefusal(t *testing.T, herr *session.HandshakeError) {
	t.Helper()
	if !reasonRE.MatchString(herr.Reason) || herr.Code != rpcproto.CloseProtocolViolation || len(herr.Text) > 123 {
		t.Fatalf("refusal %q code %d text %q (%d bytes)", herr.Reason, herr.Code, herr.Text, len(herr.Text))
	}
}

// fixedKey is the same Ed25519 key in every process of a fuzz run: the
// coordinator's seeds, sealed with it, must verify in the workers.
func fixedKey(n byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	return ed25519.NewKeyFromSeed(seed)
}

// sealFuzz seals payload for h with key, or returns nil when Seal refuses
// the payload (not one strict JSON value).
func sealFuzz(t *testing.T, signer string, key crypto.Signer, now func() time.Time, h envelope.Header, payload []byte) []byte {
	s, err := envelope.NewSealer(signer, key)
	if err != nil {
		return nil
	}
	s.Now = now
	w, err := s.Seal(h, payload)
	if err != nil {
		return nil
	}
	return w
}

// FuzzOpenRegistration feeds the cloud's reader of a device's first frame
// arbitrary frames, and arbitrary payloads sealed by a device key in the
// right session (so that the fuzzer reaches what follows the signature).
// No panic; a refusal is a well-formed HandshakeError; a registration it
// accepts is signed by its device_id with the key it presents, in the
// session, within the attribute bounds, its seq held by the window.
func FuzzOpenRegistration(f *testing.F) {
	devKey := fixedKey(1)
	der, err := keys.PublicDER(devKey.Public())
	if err != nil {
		f.Fatal(err)
	}
	pub := base64.StdEncoding.EncodeToString(der)
	now := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }
	sid := "c2Vzc2lvbi1mdXp6LTAwMDE"
	h := envelope.Header{Audience: cloudID, Direction: envelope.DeviceToCloud, Session: sid, Seq: 1}
	good := fmt.Sprintf(`{"jsonrpc":"2.0","method":"registration.register","id":1,"params":{"device_id":"dev-1","public_key":%q,"attributes":{"mac":"00:11"}}}`, pub)
	for _, p := range []string{
		good,
		fmt.Sprintf(`{"jsonrpc":"2.0","method":"registration.register","id":"a","params":{"device_id":"dev-2","public_key":%q}}`, pub),
		fmt.Sprintf(`{"jsonrpc":"2.0","method":"registration.register","params":{"device_id":"dev-1","public_key":%q}}`, pub),
		fmt.Sprintf(`{"jsonrpc":"2.0","method":"registration.register","id":1,"params":{"device_id":"dev-1","public_key":%q,"Device_ID":"x"}}`, pub),
		`{"jsonrpc":"2.0","method":"registration.register","id":1,"params":{"device_id":"dev-1","public_key":"AAAA"}}`,
		`{"jsonrpc":"2.0","method":"state.report","id":1,"params":{}}`,
		`[{"jsonrpc":"2.0","method":"registration.register","id":1}]`,
	} {
		f.Add([]byte(p), true)
	}
	w := sealFuzz(&testing.T{}, "dev-1", devKey, now, h, []byte(good))
	f.Add(w, false)
	f.Add(w[:len(w)/2], false)
	f.Add([]byte(`{"meta":{},"payload":{}}`), false)

	check := session.RegistrationCheck{Self: cloudID, Session: sid, Now: now}
	f.Fuzz(func(t *testing.T, data []byte, seal bool) {
		frame := data
		if seal {
			if frame = sealFuzz(t, "dev-1", devKey, now, h, data); frame == nil {
				return
			}
		}
		reg, herr := session.OpenRegistration(frame, check)
		if herr != nil {
			if reg != nil {
				t.Fatalf("a registration and a refusal (%v)", herr)
			}
			checkRefusal(t, herr)
			return
		}
		p := reg.Params
		if reg.Meta.Signer != p.DeviceID || !rpcproto.ValidDeviceID(p.DeviceID) || reg.Meta.Session != sid ||
			reg.Meta.Direction != envelope.DeviceToCloud || reg.Window.Top() != reg.Meta.Seq || len(reg.RequestID) == 0 {
			t.Fatalf("accepted %+v (meta %+v)", p, reg.Meta)
		}
		if len(p.Attributes) > session.MaxAttributes {
			t.Fatalf("%d attributes", len(p.Attributes))
		}
		for k, v := range p.Attributes {
			if len(k) > session.MaxAttributeKey || len(v) > session.MaxAttributeValue {
				t.Fatalf("attribute %q of %d bytes", k, len(v))
			}
		}
		pk, err := keys.ParsePublicDER(reg.PublicKeyDER)
		if err != nil || reg.Fingerprint != keys.FingerprintDER(reg.PublicKeyDER) || base64.StdEncoding.EncodeToString(reg.PublicKeyDER) != p.PublicKey {
			t.Fatalf("key %q: %v, fingerprint %s", p.PublicKey, err, reg.Fingerprint)
		}
		if e, ok := pk.(ed25519.PublicKey); !ok || !e.Equal(devKey.Public()) {
			t.Fatalf("accepted a registration signed by another key than the one presented (%T)", pk)
		}
	})
}

// FuzzOpenChallenge feeds the device's reader of the cloud's first frame
// arbitrary frames, and arbitrary payloads sealed by the cloud key. No
// panic; a refusal is a well-formed HandshakeError; an accepted challenge
// is seq 1, signed by the pinned cloud id with one of the trusted keys
// (the session keeps that one), and names that cloud.
func FuzzOpenChallenge(f *testing.F) {
	cloudKey, other := fixedKey(2), fixedKey(3)
	now := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }
	sid := "c2Vzc2lvbi1mdXp6LTAwMDI"
	h := envelope.Header{Audience: envelope.AudienceAny, Direction: envelope.CloudToDevice, Session: sid, Seq: 1}
	good := `{"jsonrpc":"2.0","method":"auth.challenge","params":{"cloud_id":"cloud-test","replica":"r1"}}`
	for _, p := range []string{
		good,
		`{"jsonrpc":"2.0","method":"auth.challenge","params":{"cloud_id":"x"}}`,
		`{"jsonrpc":"2.0","method":"auth.challenge","id":1,"params":{"cloud_id":"cloud-test"}}`,
		`{"jsonrpc":"2.0","method":"auth.challenge","params":{"Cloud_ID":"cloud-test"}}`,
		`{"jsonrpc":"2.0","method":"auth.accepted","params":{}}`,
	} {
		f.Add([]byte(p), true)
	}
	w := sealFuzz(&testing.T{}, cloudID, cloudKey, now, h, []byte(good))
	f.Add(w, false)
	f.Add(sealFuzz(&testing.T{}, cloudID, other, now, h, []byte(good)), false)
	f.Add(w[:40], false)

	check := session.ChallengeCheck{Self: "dev-1", CloudKey: other.Public(), CloudKeys: []crypto.PublicKey{cloudKey.Public()}, CloudID: cloudID, Now: now}
	f.Fuzz(func(t *testing.T, data []byte, seal bool) {
		frame := data
		if seal {
			if frame = sealFuzz(t, cloudID, cloudKey, now, h, data); frame == nil {
				return
			}
		}
		ch, herr := session.OpenChallenge(frame, check)
		if herr != nil {
			if ch != nil {
				t.Fatalf("a challenge and a refusal (%v)", herr)
			}
			checkRefusal(t, herr)
			return
		}
		k, ok := ch.Key.(ed25519.PublicKey)
		if ch.CloudID != cloudID || ch.Window.Top() != 1 || !ok || !(k.Equal(cloudKey.Public()) || k.Equal(other.Public())) || ch.Session == "" {
			t.Fatalf("accepted %+v", ch)
		}
	})
}
