package envelope

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open and Peek. Neither may panic; every
// rejection must wrap exactly one sentinel; anything Open accepts must also
// peek identically and carry a payload encoding/json accepts. As a side
// check, the strict parser must never accept what encoding/json rejects.
//
//	go test -fuzz=FuzzOpen ./pkg/envelope
func FuzzOpen(f *testing.F) {
	rsaKey := testRSA(f)
	valid := sealTest(f, deviceHeader(), testPayload)
	m := testMeta()
	m.Signer, m.Alg = "dev-rsa", "rsa-pss-sha256"
	f.Add(valid)
	f.Add(sealUnchecked(f, rsaKey, m, testPayload))
	f.Add(sealUnchecked(f, testEd, testMeta(), []byte(`{"a":1,"a":2}`)))
	f.Add(sealUnchecked(f, testEd, testMeta(), []byte(`{"a":[1,}`)))
	f.Add(sealTest(f, deviceHeader(), []byte("{\"k\":\"\\u00e9\\ud83d\\ude00\",\"n\":[1.5e3,-0,true,null]}")))
	f.Add(sealTest(f, seqHeader(MaxSeq), testPayload))
	f.Add(replace(f, valid, `"seq":7`, `"seq":0`))
	f.Add(replace(f, valid, `"seq":7`, `"seq":9007199254740992`))
	f.Add(replace(f, valid, `"seq":7`, `"seq":07`))
	f.Add(replace(f, valid, `"seq":7`, `"seq":"7"`))
	f.Add(replace(f, valid, `"seq":7`, `"seq":7.0`))
	f.Add(replace(f, valid, `"seq":7`, `"seq":-7`))
	f.Add(replace(f, valid, `"seq":7`, `"nonce":"q83vEjRWeJCrze8SNFZ4kA"`))
	f.Add(replace(f, valid, `"v":2`, `"v":1`))
	f.Add(replace(f, valid, `"id":7`, `"id":8`))
	f.Add(replace(f, valid, `"signer":"dev-1"`, `"signer":"dev-1","signer":"dev-1"`))
	f.Add(replace(f, valid, `"signer":`, `"Signer":`))
	f.Add(replace(f, valid, `"ts":1763877539123`, `"ts":1.0`))
	f.Add(replace(f, valid, `"audience":"cloud"`, `"audience":"\ud800"`))
	f.Add(append(append([]byte{}, valid...), `{}`...))
	f.Add(valid[:len(valid)/2])
	f.Add([]byte(`{"meta":{},"payload":[[[[[[[[[[]]]]]]]]]]}`))
	f.Add([]byte(`{"payload":"\"\\","meta":{"v":2}}`))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, wire []byte) {
		o := newOpener(t)
		o.Key = func(signer string) (crypto.PublicKey, error) {
			switch signer {
			case "dev-1":
				return testEd.Public(), nil
			case "dev-rsa":
				return rsaKey.Public(), nil
			}
			return nil, ErrUnknownSigner
		}
		got, err := o.Open(wire)
		pm, pp, perr := Peek(wire, 0)
		if err != nil {
			if n := len(matchingSentinels(err)); n != 1 {
				t.Fatalf("error %v wraps %d sentinels", err, n)
			}
			if errors.Is(err, ErrPayload) {
				if o.Window.Top() != pm.Seq {
					t.Fatalf("rejected with %v, Top %d, want seq %d recorded", err, o.Window.Top(), pm.Seq)
				}
			} else if o.Window.Top() != 0 {
				t.Fatalf("rejected with %v but seq %d was recorded", err, o.Window.Top())
			}
			if (errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge)) != (perr != nil) {
				t.Fatalf("Open: %v, Peek: %v", err, perr)
			}
		} else {
			if o.Window.Top() != got.Meta.Seq {
				t.Fatalf("opened seq %d, but Top is %d", got.Meta.Seq, o.Window.Top())
			}
			if _, err := o.Open(wire); !errors.Is(err, ErrReplay) {
				t.Fatalf("opened twice: %v", err)
			}
			if perr != nil || pm != got.Meta || !bytes.Equal(pp, got.Payload) {
				t.Fatalf("opened, but Peek = %+v, %s, %v", pm, pp, perr)
			}
			if !json.Valid(got.Payload) {
				t.Fatalf("accepted payload encoding/json rejects: %s", got.Payload)
			}
		}
		if validateStrict(wire) == nil && !json.Valid(wire) {
			t.Fatalf("strict parser accepted invalid JSON %q", wire)
		}
	})
}
