package envelope

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

// sentinels lists every rejection error, for tests that check an error is
// exactly one of them.
var sentinels = []error{
	ErrTooLarge, ErrMalformed, ErrUnknownSigner, ErrAlgMismatch, ErrAudience,
	ErrDirection, ErrSession, ErrTooOld, ErrFromFuture, ErrReplay,
	ErrBadSignature, ErrPayload,
}

// matchingSentinels returns the sentinels err wraps.
func matchingSentinels(err error) []error {
	var out []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

func TestSealOpenRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		signer  string
		key     crypto.Signer
		header  Header
		payload string
		want    string // payload after Open; empty means payload
		opener  func(o *Opener)
	}{
		{name: "ed25519", signer: "dev-1", key: testEd, header: deviceHeader(), payload: string(testPayload)},
		{name: "rsa-pss-sha256", signer: "dev-rsa", key: nil, header: deviceHeader(), payload: string(testPayload)},
		{name: "payload kept byte for byte", signer: "dev-1", key: testEd, header: deviceHeader(),
			payload: "{ \"a\" : [1, 2.50, \"\\u00e9\"] ,\"b\":null}"},
		{name: "surrounding whitespace trimmed", signer: "dev-1", key: testEd, header: deviceHeader(),
			payload: "\n {\"a\":1}\n", want: `{"a":1}`},
		{name: "scalar payload", signer: "dev-1", key: testEd, header: deviceHeader(), payload: `-1.5e3`},
		{name: "auth challenge to any audience", signer: "cloud", key: testEd,
			header:  Header{Audience: AudienceAny, Direction: CloudToDevice, Session: testSession, Seq: 1},
			payload: `{"jsonrpc":"2.0","method":"auth.challenge","params":{}}`,
			opener: func(o *Opener) {
				o.Self, o.AllowAnyAudience, o.Direction = "dev-1", true, CloudToDevice
			}},
		{name: "cloud to device", signer: "cloud", key: testEd,
			header:  Header{Audience: "dev-1", Direction: CloudToDevice, Session: testSession, Seq: 2},
			payload: `{"jsonrpc":"2.0","id":"x","method":"system.info"}`,
			opener:  func(o *Opener) { o.Self, o.Direction = "dev-1", CloudToDevice }},
		{name: "first seq", signer: "dev-1", key: testEd, header: seqHeader(1), payload: `{}`},
		{name: "largest seq", signer: "dev-1", key: testEd, header: seqHeader(MaxSeq), payload: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == nil {
				key = testRSA(t)
			}
			s, err := NewSealer(tt.signer, key)
			if err != nil {
				t.Fatal(err)
			}
			s.Now = fixedNow(testT0)
			wire, err := s.Seal(tt.header, []byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			o := newOpener(t)
			if tt.opener != nil {
				tt.opener(o)
			}
			got, err := o.Open(wire)
			if err != nil {
				t.Fatalf("Open: %v\nwire: %s", err, wire)
			}
			want := tt.want
			if want == "" {
				want = tt.payload
			}
			if string(got.Payload) != want {
				t.Errorf("payload = %s, want %s", got.Payload, want)
			}
			m := got.Meta
			if m.V != 2 || m.Signer != tt.signer || m.Audience != tt.header.Audience ||
				m.Direction != tt.header.Direction || m.Session != tt.header.Session ||
				m.Seq != tt.header.Seq || m.TS != testT0.UnixMilli() {
				t.Errorf("meta = %+v", m)
			}
			if alg, _ := keys.Alg(key.Public()); m.Alg != alg {
				t.Errorf("alg = %s, want %s", m.Alg, alg)
			}
			if top := o.Window.Top(); top != tt.header.Seq {
				t.Errorf("window Top = %d, want %d", top, tt.header.Seq)
			}
			if _, err := o.Open(wire); !errors.Is(err, ErrReplay) {
				t.Errorf("second Open = %v, want ErrReplay", err)
			}
			// The payload is a copy: scribbling on the wire leaves it alone.
			for i := range wire {
				wire[i] = 'x'
			}
			if string(got.Payload) != want {
				t.Error("Opened.Payload aliases the wire")
			}
		})
	}
}

// TestSealNumbering: Seal writes the caller's seq and the current time; a
// session numbered 1, 2, 3, ... opens in order, and a seq sealed twice opens
// once.
func TestSealNumbering(t *testing.T) {
	s, err := NewSealer("dev-1", testEd)
	if err != nil {
		t.Fatal(err)
	}
	o := newOpener(t)
	o.Now = nil
	for seq := uint64(1); seq <= 100; seq++ {
		w, err := s.Seal(seqHeader(seq), testPayload)
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.Open(w)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		if got.Meta.Seq != seq || o.Window.Top() != seq {
			t.Fatalf("seq %d: opened seq %d, Top %d", seq, got.Meta.Seq, o.Window.Top())
		}
	}
	// Sealing a seq again (a bug in the sender) makes a different envelope,
	// since ts moves on, but the window refuses it all the same.
	again, err := s.Seal(seqHeader(50), []byte(`{"again":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(again); !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "seq 50 already accepted") {
		t.Errorf("seq 50 sealed twice: %v, want ErrReplay (already accepted)", err)
	}
}

// TestOpenManyInOneSkew opens more messages stamped with one instant than v1
// could remember in its whole window (16384): there is no rate limit.
func TestOpenManyInOneSkew(t *testing.T) {
	n := uint64(20000)
	if raceEnabled {
		n = 2000
	}
	s, err := NewSealer("dev-1", testEd)
	if err != nil {
		t.Fatal(err)
	}
	o := newOpener(t)
	for seq := uint64(1); seq <= n; seq++ {
		w, err := s.SealAt(seqHeader(seq), testPayload, testT0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Open(w); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	if o.Window.Top() != n {
		t.Errorf("Top = %d, want %d", o.Window.Top(), n)
	}
}

// replace returns wire with the first occurrence of old replaced, failing
// the test if there is none (so a fixture change cannot make a case vacuous).
func replace(tb testing.TB, wire []byte, old, new string) []byte {
	tb.Helper()
	if !bytes.Contains(wire, []byte(old)) {
		tb.Fatalf("%q not in %s", old, wire)
	}
	return bytes.Replace(wire, []byte(old), []byte(new), 1)
}

// TestOpenRejects covers every rejection. Each case checks the sentinel, that
// the window did not record the rejected message's seq, and that the valid
// message with that seq still opens afterwards on the same window.
func TestOpenRejects(t *testing.T) {
	orig := sealTest(t, deviceHeader(), testPayload)
	sig := func(w []byte) string { m, _, _ := Peek(w, 0); return m.Sig }
	origSig := sig(orig)
	otherSig := sig(sealTest(t, deviceHeader(), []byte(`{"other":1}`)))
	anyAud := sealTest(t, Header{Audience: AudienceAny, Direction: DeviceToCloud, Session: testSession, Seq: testSeq}, testPayload)
	seq := func(n uint64) []byte { return sealTest(t, seqHeader(n), testPayload) }
	const seqField = `"seq":7` // testSeq on the wire

	weakRSA := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyIs := func(k crypto.PublicKey, err error) KeyFunc {
		return func(string) (crypto.PublicKey, error) { return k, err }
	}
	skew := DefaultSkew

	tests := []struct {
		name  string
		wire  []byte        // the rejected message; nil means orig
		tweak func(*Opener) // a misfit receiver; nil means the default one
		want  error         // the sentinel
		valid []byte        // opens afterwards on the same window; nil means orig
		fix   func(*Opener) // receiver for valid; nil means the default one
		setup func(*Opener) // runs before the rejected Open
		top0  uint64        // window Top before (and after) the rejection
	}{
		{name: "too large", tweak: func(o *Opener) { o.MaxSize = len(orig) - 1 }, want: ErrTooLarge},
		{name: "too large by default", wire: append(bytes.Repeat([]byte(" "), DefaultMaxSize), orig...), want: ErrTooLarge},

		{name: "empty", wire: []byte{}, want: ErrMalformed},
		{name: "not an object", wire: []byte(`[1]`), want: ErrMalformed},
		{name: "not JSON", wire: []byte(`meta`), want: ErrMalformed},
		{name: "trailing data", wire: append(append([]byte{}, orig...), `{}`...), want: ErrMalformed},
		{name: "trailing garbage", wire: append(append([]byte{}, orig...), 'x'), want: ErrMalformed},
		{name: "top-level unknown key", wire: replace(t, orig, `{"meta":`, `{"extra":1,"meta":`), want: ErrMalformed},
		{name: "top-level case variant", wire: replace(t, orig, `"payload":`, `"Payload":`), want: ErrMalformed},
		{name: "top-level duplicate meta", wire: replace(t, orig, `,"payload":`, `,"meta":{},"payload":`), want: ErrMalformed},
		{name: "top-level duplicate payload", wire: replace(t, orig, `,"payload":`, `,"payload":1,"payload":`), want: ErrMalformed},
		{name: "missing payload", wire: []byte(strings.SplitN(string(orig), `,"payload"`, 2)[0] + "}"), want: ErrMalformed},
		{name: "missing meta", wire: []byte(`{"payload":{}}`), want: ErrMalformed},
		{name: "meta not an object", wire: []byte(`{"meta":[],"payload":{}}`), want: ErrMalformed},
		{name: "meta unknown key", wire: replace(t, orig, `{"v":2,`, `{"v":2,"kid":"x",`), want: ErrMalformed},
		{name: "meta case variant key", wire: replace(t, orig, `"signer":`, `"Signer":`), want: ErrMalformed},
		{name: "meta case variant key, escaped", wire: replace(t, orig, `"signer":`, `"\u0053igner":`), want: ErrMalformed},
		{name: "meta duplicate key", wire: replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-1","signer":"dev-1"`), want: ErrMalformed},
		{name: "meta duplicate key, escaped", wire: replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-1","\u0073igner":"dev-1"`), want: ErrMalformed},
		{name: "meta missing field", wire: replace(t, orig, `"direction":"device_to_cloud",`, ``), want: ErrMalformed},
		{name: "meta missing v", wire: replace(t, orig, `"v":2,`, ``), want: ErrMalformed},
		{name: "meta empty string", wire: replace(t, orig, `"audience":"cloud"`, `"audience":""`), want: ErrMalformed},
		{name: "meta null", wire: replace(t, orig, `"audience":"cloud"`, `"audience":null`), want: ErrMalformed},
		{name: "meta v is 1", wire: replace(t, orig, `"v":2`, `"v":1`), want: ErrMalformed},
		{name: "meta v is 3", wire: replace(t, orig, `"v":2`, `"v":3`), want: ErrMalformed},
		{name: "meta v is a string", wire: replace(t, orig, `"v":2`, `"v":"2"`), want: ErrMalformed},
		{name: "meta v is 2.0", wire: replace(t, orig, `"v":2`, `"v":2.0`), want: ErrMalformed},
		{name: "meta v overflows", wire: replace(t, orig, `"v":2`, `"v":18446744073709551618`), want: ErrMalformed},
		{name: "v1 nonce instead of seq", wire: replace(t, orig, seqField, `"nonce":"q83vEjRWeJCrze8SNFZ4kA"`), want: ErrMalformed},
		{name: "v1 nonce besides seq", wire: replace(t, orig, seqField, seqField+`,"nonce":"q83vEjRWeJCrze8SNFZ4kA"`), want: ErrMalformed},
		{name: "seq missing", wire: replace(t, orig, seqField+",", ``), want: ErrMalformed},
		{name: "seq is 0", wire: replace(t, orig, seqField, `"seq":0`), want: ErrMalformed},
		{name: "seq is MaxSeq+1", wire: replace(t, orig, seqField, `"seq":9007199254740992`), want: ErrMalformed},
		{name: "seq is 2^64", wire: replace(t, orig, seqField, `"seq":18446744073709551616`), want: ErrMalformed},
		{name: "seq overflows", wire: replace(t, orig, seqField, `"seq":99999999999999999999999`), want: ErrMalformed},
		{name: "seq is a string", wire: replace(t, orig, seqField, `"seq":"7"`), want: ErrMalformed},
		{name: "seq is a float", wire: replace(t, orig, seqField, `"seq":7.0`), want: ErrMalformed},
		{name: "seq has an exponent", wire: replace(t, orig, seqField, `"seq":7e0`), want: ErrMalformed},
		{name: "seq negative", wire: replace(t, orig, seqField, `"seq":-7`), want: ErrMalformed},
		{name: "seq minus zero", wire: replace(t, orig, seqField, `"seq":-0`), want: ErrMalformed},
		{name: "seq leading zero", wire: replace(t, orig, seqField, `"seq":07`), want: ErrMalformed},
		{name: "seq plus sign", wire: replace(t, orig, seqField, `"seq":+7`), want: ErrMalformed},
		{name: "seq null", wire: replace(t, orig, seqField, `"seq":null`), want: ErrMalformed},
		{name: "seq true", wire: replace(t, orig, seqField, `"seq":true`), want: ErrMalformed},
		{name: "meta ts is a string", wire: replace(t, orig, `"ts":1763877539123`, `"ts":"1763877539123"`), want: ErrMalformed},
		{name: "meta ts has a fraction", wire: replace(t, orig, `"ts":1763877539123`, `"ts":1763877539123.0`), want: ErrMalformed},
		{name: "meta ts has an exponent", wire: replace(t, orig, `"ts":1763877539123`, `"ts":1.763877539123e12`), want: ErrMalformed},
		{name: "meta ts negative", wire: replace(t, orig, `"ts":1763877539123`, `"ts":-1763877539123`), want: ErrMalformed},
		{name: "meta ts leading zero", wire: replace(t, orig, `"ts":1763877539123`, `"ts":01763877539123`), want: ErrMalformed},
		{name: "meta ts overflows", wire: replace(t, orig, `"ts":1763877539123`, `"ts":99999999999999999999`), want: ErrMalformed},
		{name: "meta signer is a number", wire: replace(t, orig, `"signer":"dev-1"`, `"signer":1`), want: ErrMalformed},
		{name: "meta control character", wire: replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-1\n"`), want: ErrMalformed},
		{name: "meta raw control character", wire: replace(t, orig, `"signer":"dev-1"`, "\"signer\":\"dev-1\t\""), want: ErrMalformed},
		{name: "meta invalid UTF-8", wire: replace(t, orig, `"signer":"dev-1"`, "\"signer\":\"dev-\xff\""), want: ErrMalformed},
		{name: "meta lone surrogate", wire: replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-\udc00"`), want: ErrMalformed},
		{name: "meta bad escape", wire: replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-\x41"`), want: ErrMalformed},
		{name: "sig not base64url", wire: replace(t, orig, origSig, origSig[:10]+"/"+origSig[11:]), want: ErrMalformed},
		{name: "sig padded", wire: replace(t, orig, origSig, origSig+"=="), want: ErrMalformed},
		{name: "sig non-zero padding bits", wire: replace(t, orig, origSig, origSig[:85]+string(origSig[85]+1)), want: ErrMalformed},
		{name: "sig too long", wire: replace(t, orig, origSig, strings.Repeat("A", 3000)), want: ErrMalformed},
		{name: "payload unterminated", wire: orig[:len(orig)-2], want: ErrMalformed},
		{name: "payload missing value", wire: replace(t, orig, `"payload":{`, `"payload":,{`), want: ErrMalformed},

		{name: "unknown signer", tweak: func(o *Opener) { o.Key = keyIs(nil, fmt.Errorf("no such device: %w", ErrUnknownSigner)) }, want: ErrUnknownSigner},
		{name: "unknown signer, nil key", tweak: func(o *Opener) { o.Key = keyIs(nil, nil) }, want: ErrUnknownSigner},
		{name: "unknown signer name", wire: replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-2"`), want: ErrUnknownSigner},

		{name: "alg claims rsa, key is ed25519", wire: replace(t, orig, `"alg":"ed25519"`, `"alg":"rsa-pss-sha256"`), want: ErrAlgMismatch},
		{name: "alg unknown", wire: replace(t, orig, `"alg":"ed25519"`, `"alg":"none"`), want: ErrAlgMismatch},
		{name: "key is rsa, alg ed25519", tweak: func(o *Opener) { o.Key = keyIs(testRSA(t).Public(), nil) }, want: ErrAlgMismatch},
		{name: "key is weak rsa", tweak: func(o *Opener) { o.Key = keyIs(weakRSA, nil) }, want: ErrAlgMismatch},
		{name: "key is ecdsa", tweak: func(o *Opener) { o.Key = keyIs(ecKey.Public(), nil) }, want: ErrAlgMismatch},

		{name: "audience", tweak: func(o *Opener) { o.Self = "cloud-2" }, want: ErrAudience},
		{name: "audience any not allowed", wire: anyAud, want: ErrAudience,
			valid: anyAud, fix: func(o *Opener) { o.AllowAnyAudience = true }},
		{name: "direction", tweak: func(o *Opener) { o.Direction = CloudToDevice }, want: ErrDirection},
		{name: "session", tweak: func(o *Opener) { o.Session = "another-session" }, want: ErrSession},
		{name: "too old", tweak: func(o *Opener) { o.Now = fixedNow(testT0.Add(skew + time.Millisecond)) }, want: ErrTooOld},
		{name: "from the future", tweak: func(o *Opener) { o.Now = fixedNow(testT0.Add(-skew - time.Millisecond)) }, want: ErrFromFuture},
		{name: "too old, custom skew", tweak: func(o *Opener) { o.Skew = time.Second; o.Now = fixedNow(testT0.Add(1001 * time.Millisecond)) }, want: ErrTooOld},

		{name: "bad signature: another message's", wire: replace(t, orig, origSig, otherSig), want: ErrBadSignature},
		{name: "bad signature: payload changed", wire: replace(t, orig, `"id":7`, `"id":8`), want: ErrBadSignature},
		{name: "bad signature: payload whitespace", wire: replace(t, orig, `"id":7`, `"id": 7`), want: ErrBadSignature},
		{name: "bad signature: seq changed", wire: replace(t, orig, seqField, `"seq":8`), want: ErrBadSignature,
			valid: seq(8)},
		{name: "bad signature: seq raised to the maximum", wire: replace(t, orig, seqField, `"seq":9007199254740991`), want: ErrBadSignature},
		{name: "bad signature: truncated", wire: replace(t, orig, origSig, origSig[:len(origSig)-2]), want: ErrBadSignature},
		{name: "bad signature: wrong key", tweak: func(o *Opener) {
			other, _ := keys.Generate(keys.AlgEd25519, 0)
			o.Key = keyIs(other.Public(), nil)
		}, want: ErrBadSignature},
		{name: "bad signature: rsa", wire: func() []byte {
			m := testMeta()
			m.Signer, m.Alg = "dev-rsa", keys.AlgRSAPSS
			w := sealUnchecked(t, testRSA(t), m, testPayload)
			return replace(t, w, `"id":7`, `"id":9`)
		}(), want: ErrBadSignature, valid: func() []byte {
			m := testMeta()
			m.Signer, m.Alg = "dev-rsa", keys.AlgRSAPSS
			return sealUnchecked(t, testRSA(t), m, testPayload)
		}()},

		{name: "replay", setup: func(o *Opener) {
			if _, err := o.Open(orig); err != nil {
				t.Fatal(err)
			}
		}, top0: testSeq, want: ErrReplay, valid: []byte{}},
		{name: "replay of a seq below Top", setup: func(o *Opener) {
			for _, w := range [][]byte{seq(9), orig} {
				if _, err := o.Open(w); err != nil {
					t.Fatal(err)
				}
			}
		}, top0: 9, want: ErrReplay,
			valid: seq(8)}, // never seen, inside the window: still opens
		{name: "below the window", setup: func(o *Opener) {
			o.Window = NewReplayWindow(64)
			if _, err := o.Open(seq(testSeq + 64)); err != nil {
				t.Fatal(err)
			}
		}, top0: testSeq + 64, want: ErrReplay,
			valid: seq(testSeq + 1)}, // the lowest seq of the window [8, 71]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOpener(t)
			if tt.setup != nil {
				tt.setup(o)
			}
			window := o.Window
			bad := *o
			if tt.tweak != nil {
				tt.tweak(&bad)
			}
			wire := tt.wire
			if wire == nil {
				wire = orig
			}
			_, err := bad.Open(wire)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			if got := matchingSentinels(err); len(got) != 1 {
				t.Errorf("error %v matches %d sentinels", err, len(got))
			}
			if top := window.Top(); top != tt.top0 {
				t.Errorf("window Top = %d after rejection, want %d: the rejected seq was recorded", top, tt.top0)
			}
			valid := tt.valid
			if valid == nil {
				valid = orig
			}
			if len(valid) == 0 {
				return // replay: the valid message was the first open
			}
			good := *o
			if tt.fix != nil {
				tt.fix(&good)
			}
			if _, err := good.Open(valid); err != nil {
				t.Errorf("the valid message no longer opens: %v", err)
			}
		})
	}
}

// TestOpenRejectsPayload: a signed but broken payload is ErrPayload, and,
// unlike every other rejection, its seq IS recorded: the protocol records
// the seq once the signature holds and parses the payload after that. The
// message is authentic, so it must not be replayable (not even to re-trigger
// the error).
func TestOpenRejectsPayload(t *testing.T) {
	tests := []struct {
		name    string
		payload string
	}{
		{name: "duplicate key", payload: `{"id":1,"method":"a","method":"b"}`},
		{name: "nested duplicate key, escaped", payload: `{"params":[{"k":1,"\u006b":2}]}`},
		{name: "duplicate key in a large object", payload: `{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"a3":3}`},
		{name: "trailing comma", payload: `{"a":1,}`},
		{name: "mismatched brackets", payload: `{"a":[1}]`},
		{name: "invalid UTF-8", payload: "{\"a\":\"\xff\"}"},
		{name: "lone surrogate", payload: `["\ud800"]`},
		{name: "bad literal", payload: `truex`},
		{name: "bad number", payload: `01`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := sealUnchecked(t, testEd, testMeta(), []byte(tt.payload))
			o := newOpener(t)
			_, err := o.Open(wire)
			if !errors.Is(err, ErrPayload) || len(matchingSentinels(err)) != 1 {
				t.Fatalf("Open = %v, want ErrPayload", err)
			}
			if top := o.Window.Top(); top != testSeq {
				t.Errorf("window Top = %d, want %d (recorded once the signature held)", top, testSeq)
			}
			if _, err := o.Open(wire); !errors.Is(err, ErrReplay) {
				t.Errorf("second Open = %v, want ErrReplay", err)
			}
			// A forged copy fails on the signature, before the payload.
			forged := replace(t, wire, `"ts":`, `"ts":1`)
			o2 := newOpener(t)
			o2.Now = nil
			if _, err := o2.Open(forged); errors.Is(err, ErrPayload) {
				t.Error("payload judged before the checks that precede it")
			}
		})
	}
}

// TestOpenCheckOrder breaks two checks at once and expects the earlier one.
func TestOpenCheckOrder(t *testing.T) {
	orig := sealTest(t, deviceHeader(), testPayload)
	badPayload := sealUnchecked(t, testEd, testMeta(), []byte(`{"a":1,"a":2}`))
	tests := []struct {
		name  string
		wire  []byte
		tweak func(*Opener)
		want  error
	}{
		{name: "size before shape", wire: append([]byte("junk"), orig...), tweak: func(o *Opener) { o.MaxSize = 10 }, want: ErrTooLarge},
		{name: "shape before signer", wire: replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-2","x":1`), want: ErrMalformed},
		{name: "seq range is shape, before signer", wire: replace(t, replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-2"`), `"seq":7`, `"seq":0`),
			want: ErrMalformed},
		{name: "signer before alg", wire: replace(t, replace(t, orig, `"signer":"dev-1"`, `"signer":"dev-2"`), `"alg":"ed25519"`, `"alg":"x"`),
			want: ErrUnknownSigner},
		{name: "alg before audience", wire: replace(t, orig, `"alg":"ed25519"`, `"alg":"x"`), tweak: func(o *Opener) { o.Self = "x" }, want: ErrAlgMismatch},
		{name: "audience before direction", tweak: func(o *Opener) { o.Self, o.Direction = "x", CloudToDevice }, want: ErrAudience},
		{name: "direction before session", tweak: func(o *Opener) { o.Direction, o.Session = CloudToDevice, "x" }, want: ErrDirection},
		{name: "session before time", tweak: func(o *Opener) { o.Session, o.Now = "x", fixedNow(time.Unix(0, 0)) }, want: ErrSession},
		{name: "time before replay", tweak: func(o *Opener) {
			_, _ = o.Open(orig)
			o.Now = fixedNow(testT0.Add(time.Hour))
		}, want: ErrTooOld},
		{name: "replay before signature", wire: replace(t, orig, `"id":7`, `"id":8`), tweak: func(o *Opener) { _, _ = o.Open(orig) }, want: ErrReplay},
		{name: "below the window before signature", wire: replace(t, orig, `"id":7`, `"id":8`), tweak: func(o *Opener) {
			o.Window = NewReplayWindow(64)
			if _, err := o.Open(sealTest(t, seqHeader(1000), testPayload)); err != nil {
				t.Fatal(err)
			}
		}, want: ErrReplay},
		{name: "signature before payload", wire: replace(t, badPayload, `"a":2`, `"a":3`), want: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOpener(t)
			if tt.tweak != nil {
				tt.tweak(o)
			}
			wire := tt.wire
			if wire == nil {
				wire = orig
			}
			if _, err := o.Open(wire); !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenSkewBoundaries(t *testing.T) {
	wire := sealTest(t, deviceHeader(), testPayload)
	for _, d := range []time.Duration{-DefaultSkew, 0, DefaultSkew} {
		o := newOpener(t)
		o.Now = fixedNow(testT0.Add(d))
		if _, err := o.Open(wire); err != nil {
			t.Errorf("now = ts%+v: %v", d, err)
		}
	}
}

// TestOpenConcurrentReplay opens one envelope from many goroutines at once:
// exactly one wins, the rest get ErrReplay (run with -race).
func TestOpenConcurrentReplay(t *testing.T) {
	wire := sealTest(t, deviceHeader(), testPayload)
	for round := 0; round < 20; round++ {
		o := newOpener(t)
		const n = 16
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, n)
		)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = o.Open(wire)
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrReplay):
				t.Fatalf("unexpected error %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d opens succeeded, want exactly 1", ok)
		}
		if top := o.Window.Top(); top != testSeq {
			t.Fatalf("Top = %d, want %d", top, testSeq)
		}
	}
}

// TestOpenConcurrentReordered: goroutines race through one session's
// envelopes, each in its own order (so seqs arrive out of order and several
// times): every seq opens exactly once.
func TestOpenConcurrentReordered(t *testing.T) {
	const n, workers = 64, 8
	wires := make([][]byte, n)
	for i := range wires {
		wires[i] = sealTest(t, seqHeader(uint64(i+1)), testPayload)
	}
	o := newOpener(t)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		wins  [n]int
		mu    sync.Mutex
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for k := 0; k < n; k++ {
				i := (k*(2*w+1) + w*7) % n // a different permutation per worker
				_, err := o.Open(wires[i])
				switch {
				case err == nil:
					mu.Lock()
					wins[i]++
					mu.Unlock()
				case !errors.Is(err, ErrReplay):
					t.Errorf("seq %d: %v", i+1, err)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	for i, c := range wins {
		if c != 1 {
			t.Errorf("seq %d opened %d times, want exactly 1", i+1, c)
		}
	}
	if top := o.Window.Top(); top != n {
		t.Errorf("Top = %d, want %d", top, n)
	}
}

func TestOpenMisconfigured(t *testing.T) {
	wire := sealTest(t, deviceHeader(), testPayload)
	o := newOpener(t)
	o.Window = nil
	if _, err := o.Open(wire); err == nil || len(matchingSentinels(err)) != 0 {
		t.Errorf("nil Window: %v, want a configuration error", err)
	}
	// The zero value of a window is a working one.
	o = newOpener(t)
	o.Window = new(ReplayWindow)
	if _, err := o.Open(wire); err != nil {
		t.Errorf("zero Window: %v", err)
	}
	if _, err := o.Open(wire); !errors.Is(err, ErrReplay) {
		t.Errorf("zero Window, replay: %v, want ErrReplay", err)
	}
	o = newOpener(t)
	o.Key = nil
	if _, err := o.Open(wire); err == nil || len(matchingSentinels(err)) != 0 {
		t.Errorf("nil Key: %v, want a configuration error", err)
	}
	// A KeyFunc failure that is not "unknown" passes through.
	dbDown := errors.New("database down")
	o = newOpener(t)
	o.Key = func(string) (crypto.PublicKey, error) { return nil, dbDown }
	if _, err := o.Open(wire); !errors.Is(err, dbDown) || len(matchingSentinels(err)) != 0 {
		t.Errorf("KeyFunc error: %v", err)
	}
	// An empty Self or Session never matches.
	o = newOpener(t)
	o.Self, o.Session = "", ""
	if _, err := o.Open(wire); !errors.Is(err, ErrAudience) {
		t.Errorf("empty Self: %v", err)
	}
}

func TestErrorsDoNotEchoUnboundedData(t *testing.T) {
	orig := sealTest(t, deviceHeader(), testPayload)
	long := strings.Repeat("A", 5000)
	for _, w := range [][]byte{
		replace(t, orig, `"signer":"dev-1"`, `"signer":"`+long+`"`),
		replace(t, orig, `"audience":"cloud"`, `"audience":"`+long+`"`),
		replace(t, orig, `"signer":`, `"`+long+`":`),
		replace(t, orig, `"meta":`, `"`+long+`":`),
		replace(t, orig, `"alg":"ed25519"`, `"alg":"`+long+`"`),
		replace(t, orig, `"seq":7`, `"seq":`+strings.Repeat("9", 5000)),
		replace(t, orig, `"ts":`, `"ts":`+strings.Repeat("9", 5000)),
	} {
		o := newOpener(t)
		o.Key = func(string) (crypto.PublicKey, error) { return testEd.Public(), nil }
		_, err := o.Open(w)
		if err == nil || len(err.Error()) > 300 {
			t.Errorf("error of %d bytes: %.100v", len(fmt.Sprint(err)), err)
		}
	}
}

func TestPeek(t *testing.T) {
	wire := sealTest(t, deviceHeader(), testPayload)
	m, payload, err := Peek(wire, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := testMeta()
	want.Sig = m.Sig
	if m != want || string(payload) != string(testPayload) {
		t.Errorf("Peek = %+v %s", m, payload)
	}
	// Peek verifies nothing beyond shape: a forged signature still peeks...
	forged := replace(t, wire, `"id":7`, `"id":8`)
	if _, _, err := Peek(forged, 0); err != nil {
		t.Errorf("Peek(forged) = %v", err)
	}
	// ...but size and shape are enforced exactly as Open does.
	if _, _, err := Peek(wire, len(wire)-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Peek too large = %v", err)
	}
	if _, _, err := Peek(replace(t, wire, `"signer":`, `"Signer":`), 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("Peek case variant = %v", err)
	}
	for _, bad := range []string{`"seq":0`, `"seq":9007199254740992`} {
		if _, _, err := Peek(replace(t, wire, `"seq":7`, bad), 0); !errors.Is(err, ErrMalformed) {
			t.Errorf("Peek %s = %v, want ErrMalformed", bad, err)
		}
	}
}

// TestOpenAcceptsEquivalentJSON: receivers accept any valid spelling of meta
// (key order, whitespace, escapes), because the signature covers values, not
// meta's bytes. Seal writes one spelling only.
func TestOpenAcceptsEquivalentJSON(t *testing.T) {
	orig := sealTest(t, deviceHeader(), testPayload)
	m, _, _ := Peek(orig, 0)
	reordered := fmt.Sprintf(" {\n \"payload\" : %s ,\r\n\t\"meta\": {\"sig\":%q, \"alg\":\"ed25519\", \"ts\": 1763877539123, \"seq\" :\t7 ,"+
		"\"session\":\"Jm3r0qYx1kQmC0r3bXc9Vw\",\"direction\":\"device_to_cloud\",\"audience\":\"\\u0063loud\",\"signer\":\"dev\\u002d1\",\"v\":2}}\n", testPayload, m.Sig)
	got, err := newOpener(t).Open([]byte(reordered))
	if err != nil {
		t.Fatalf("Open(%s): %v", reordered, err)
	}
	if got.Meta != m || string(got.Payload) != string(testPayload) {
		t.Errorf("got %+v", got)
	}
}

func TestSealRefuses(t *testing.T) {
	tests := []struct {
		name    string
		signer  string
		header  Header
		payload string
		want    error
	}{
		{name: "empty payload", payload: ``, want: ErrPayload},
		{name: "two values", payload: `{} {}`, want: ErrPayload},
		{name: "invalid JSON", payload: `{"a":}`, want: ErrPayload},
		{name: "duplicate key", payload: `{"a":1,"a":2}`, want: ErrPayload},
		{name: "invalid UTF-8", payload: "\"\xff\"", want: ErrPayload},
		{name: "empty audience", header: Header{Direction: DeviceToCloud, Session: testSession, Seq: 1}, want: ErrMalformed},
		{name: "empty session", header: Header{Audience: "cloud", Direction: DeviceToCloud, Seq: 1}, want: ErrMalformed},
		{name: "unknown direction", header: Header{Audience: "cloud", Direction: "sideways", Session: testSession, Seq: 1}, want: ErrMalformed},
		{name: "control character", header: Header{Audience: "clo\nud", Direction: DeviceToCloud, Session: testSession, Seq: 1}, want: ErrMalformed},
		{name: "invalid UTF-8 in meta", header: Header{Audience: "clo\xffud", Direction: DeviceToCloud, Session: testSession, Seq: 1}, want: ErrMalformed},
		{name: "seq 0", header: seqHeader(0), want: ErrMalformed},
		{name: "seq above MaxSeq", header: seqHeader(MaxSeq + 1), want: ErrMalformed},
		{name: "seq 2^64-1", header: seqHeader(1<<64 - 1), want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == (Header{}) {
				h = deviceHeader()
			}
			payload := tt.payload
			if payload == "" && tt.want != ErrPayload {
				payload = `{}`
			}
			s := &Sealer{Signer: "dev-1", Key: testEd}
			if _, err := s.Seal(h, []byte(payload)); !errors.Is(err, tt.want) {
				t.Errorf("Seal = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := NewSealer("", testEd); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewSealer(empty signer) = %v", err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSealer("dev-1", weak); !errors.Is(err, keys.ErrWeakKey) {
		t.Errorf("NewSealer(RSA-1024) = %v, want keys.ErrWeakKey", err)
	}
	if _, err := (&Sealer{Signer: "dev-1"}).Seal(deviceHeader(), testPayload); err == nil {
		t.Error("Seal without a key succeeded")
	}
}

// TestOpenWorstCaseInputs feeds maximum-size hostile inputs (deep nesting,
// huge objects, escapes) to Open and Peek: each must be rejected as
// malformed, without a stack overflow, in time linear in its size (the
// bound is loose; anything quadratic would take minutes).
func TestOpenWorstCaseInputs(t *testing.T) {
	n := DefaultMaxSize - 100
	manyKeys := func(distinct bool) string {
		var b strings.Builder
		for i := 0; b.Len() < n-20; i++ {
			if distinct {
				fmt.Fprintf(&b, `"k%d":1,`, i)
			} else {
				fmt.Fprintf(&b, `"k%s":1,`, strings.Repeat("x", i%50))
			}
		}
		return b.String()
	}
	tests := []struct {
		name    string
		payload string
	}{
		{name: "deep arrays, unclosed", payload: strings.Repeat("[", n)},
		{name: "deep arrays", payload: strings.Repeat("[", n/2) + strings.Repeat("]", n/2)},
		{name: "deep objects, unclosed", payload: strings.Repeat(`{"a":`, n/5)},
		{name: "many distinct keys", payload: "{" + manyKeys(true) + `"z":1}`},
		{name: "many duplicate keys", payload: "{" + manyKeys(false) + `"z":1}`},
		{name: "escapes", payload: `"` + strings.Repeat(`\u0041`, n/6) + `"`},
		{name: "escaped duplicate keys", payload: "{" + strings.Repeat(`"\u0041":1,`, n/12) + `"z":1}`},
		{name: "empty strings", payload: `[` + strings.Repeat(`"",`, n/3) + `1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// payload first: meta (invalid) is only reached after it.
			wire := []byte(`{"payload":` + tt.payload + `,"meta":{"v":2}}`)
			start := time.Now()
			if _, err := newOpener(t).Open(wire); !errors.Is(err, ErrMalformed) {
				t.Errorf("Open = %.100v", err)
			}
			if _, _, err := Peek(wire, 0); !errors.Is(err, ErrMalformed) {
				t.Errorf("Peek = %.100v", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v for %d bytes", d, len(wire))
			}
		})
	}
}
