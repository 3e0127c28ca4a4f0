package envelope

import (
	"bytes"
	"crypto"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// gen makes random but valid inputs from a seeded source, so a failure
// names a seed that reproduces it.
type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, 0x5eed))} }

// runes mixes plain ASCII with the characters that need care: the two meta
// escapes, '/', multi-byte UTF-8 of every length.
var runes = []rune("abcXYZ019-_.:@ \"\\/éü日本😀~")

func (g *gen) metaString() string {
	n := 1 + g.r.IntN(12)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(runes[g.r.IntN(len(runes))])
	}
	return b.String()
}

func (g *gen) ws() string {
	if g.r.IntN(4) != 0 {
		return ""
	}
	return []string{" ", "\n", "\t", "\r\n  "}[g.r.IntN(4)]
}

// jsonString writes s with a random but valid choice of escapes, so the
// payload's exact spelling varies too.
func (g *gen) jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || g.r.IntN(8) == 0:
			if r > 0xffff {
				hi, lo := 0xd800+((r-0x10000)>>10), 0xdc00+((r-0x10000)&0x3ff)
				fmt.Fprintf(&b, `\u%04x\u%04X`, hi, lo)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (g *gen) value(depth int) string {
	k := g.r.IntN(8)
	if depth > 3 {
		k = 2 + g.r.IntN(6)
	}
	switch k {
	case 0: // object with distinct keys
		n := g.r.IntN(5)
		if g.r.IntN(10) == 0 {
			n = 20 // past linearKeys
		}
		seen := map[string]bool{}
		var parts []string
		for len(parts) < n {
			key := g.metaString() + string(rune(0x1+g.r.IntN(3)))
			if seen[key] {
				continue
			}
			seen[key] = true
			parts = append(parts, g.ws()+g.jsonString(key)+g.ws()+":"+g.ws()+g.value(depth+1)+g.ws())
		}
		return "{" + strings.Join(parts, ",") + "}"
	case 1:
		var parts []string
		for n := g.r.IntN(4); n > 0; n-- {
			parts = append(parts, g.ws()+g.value(depth+1)+g.ws())
		}
		return "[" + strings.Join(parts, ",") + "]"
	case 2:
		return strconv.Itoa(g.r.IntN(2000) - 1000)
	case 3:
		return []string{"0.5", "-1e9", "2.50", "1E+2", "-0", "18446744073709551616"}[g.r.IntN(6)]
	case 4:
		return []string{"true", "false", "null"}[g.r.IntN(3)]
	default:
		return g.jsonString(g.metaString())
	}
}

func (g *gen) payload() string {
	if g.r.IntN(3) == 0 {
		return g.value(0)
	}
	return `{"jsonrpc":"2.0","id":` + strconv.Itoa(g.r.IntN(1000)) + `,"method":` + g.jsonString(g.metaString()) + `,"params":` + g.value(1) + `}`
}

// seq is a random valid seq: small ones as a session's are, and any up to
// MaxSeq.
func (g *gen) seq() uint64 {
	if g.r.IntN(2) == 0 {
		return 1 + g.r.Uint64N(100)
	}
	return 1 + g.r.Uint64N(MaxSeq)
}

func (g *gen) header() Header {
	h := Header{Audience: g.metaString(), Direction: DeviceToCloud, Session: g.metaString(), Seq: g.seq()}
	if g.r.IntN(2) == 0 {
		h.Direction = CloudToDevice
	}
	return h
}

// openerFor accepts exactly h, with key for every signer.
func openerFor(h Header, key crypto.PublicKey, now time.Time) *Opener {
	return &Opener{
		Self: h.Audience, Direction: h.Direction, Session: h.Session,
		Key:    func(string) (crypto.PublicKey, error) { return key, nil },
		Window: NewReplayWindow(0), Now: fixedNow(now),
	}
}

// TestPropertyRoundTrip: for random metas and payloads, Open(Seal(m))
// returns m and the payload's exact bytes.
func TestPropertyRoundTrip(t *testing.T) {
	rsaKey := testRSA(t)
	for seed := uint64(0); seed < 400; seed++ {
		g := newGen(seed)
		var key crypto.Signer = testEd
		if seed%20 == 0 {
			key = rsaKey
		}
		signer, h, payload := g.metaString(), g.header(), g.payload()
		if err := validateStrict([]byte(payload)); err != nil || !json.Valid([]byte(payload)) {
			t.Fatalf("seed %d: generator made invalid JSON %s: %v", seed, payload, err)
		}
		s, err := NewSealer(signer, key)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		now := time.UnixMilli(g.r.Int64N(1 << 42))
		s.Now = fixedNow(now)
		wire, err := s.Seal(h, []byte(payload))
		if err != nil {
			t.Fatalf("seed %d: Seal: %v", seed, err)
		}
		o := openerFor(h, key.Public(), now.Add(time.Duration(g.r.IntN(200_000)-100_000)*time.Millisecond))
		got, err := o.Open(wire)
		if err != nil {
			t.Fatalf("seed %d: Open: %v\n%s", seed, err, wire)
		}
		if string(got.Payload) != payload || got.Meta.Signer != signer || got.Meta.Audience != h.Audience ||
			got.Meta.Session != h.Session || got.Meta.Direction != h.Direction || got.Meta.Seq != h.Seq ||
			got.Meta.TS != now.UnixMilli() {
			t.Fatalf("seed %d: opened %+v %s", seed, got.Meta, got.Payload)
		}
		if !json.Valid(wire) {
			t.Fatalf("seed %d: wire is not JSON: %s", seed, wire)
		}
	}
}

// TestPropertySingleByteChange: every single-byte change of a sealed wire,
// at every position, to every other byte value, is rejected, and none of
// those rejections records a seq. Afterwards the untouched wire opens.
//
// There are no exceptions, by construction of Seal's output: meta is
// compact (no whitespace to swap for other whitespace), keys are fixed,
// strings use only the escapes \" and \\ (no \uXXXX whose hex case could
// change), seq and ts have no leading zeros or exponent, and sig is strict
// base64url (its unused low bits must be zero). Every change
// therefore breaks the shape or changes a value the signature covers, or
// v or sig themselves. The payload is signed byte for byte.
func TestPropertySingleByteChange(t *testing.T) {
	// benign would name a change that legitimately leaves the envelope
	// meaning the same; with Seal's canonical output there are none, and a
	// change that opens fails the test.
	type envCase struct {
		name   string
		key    crypto.Signer
		signer string
		h      Header
		pay    string
	}
	g := newGen(42)
	cases := []envCase{
		{"ed25519 rpc", testEd, "dev-1", deviceHeader(), `{"jsonrpc":"2.0","id":7,"method":"a.b","params":[1,"x"]}`},
		{"ed25519 escapes and unicode", testEd, `dév-"1"\x`, Header{Audience: `c"l\oud`, Direction: CloudToDevice, Session: "sé😀", Seq: 42}, `{"k": "\u00e9 é\n", "n":-1.5e3 }`},
		{"ed25519 random", testEd, g.metaString(), g.header(), g.payload()},
		{"ed25519 scalar payload", testEd, "dev-1", deviceHeader(), `12`},
		{"ed25519 first seq", testEd, "dev-1", seqHeader(1), `{}`},
		{"ed25519 largest seq", testEd, "dev-1", seqHeader(MaxSeq), `{}`},
		{"ed25519 seq of ten digits", testEd, "dev-1", seqHeader(1000000000), `{}`},
		{"rsa-pss-sha256", testRSA(t), "dev-rsa", deviceHeader(), `{"id":1}`},
	}
	values := func(orig byte) []byte {
		if !raceEnabled {
			all := make([]byte, 0, 255)
			for v := 0; v < 256; v++ {
				if byte(v) != orig {
					all = append(all, byte(v))
				}
			}
			return all
		}
		// Under -race: the bytes most likely to survive parsing.
		var out []byte
		for _, v := range []byte{' ', '\n', '"', '\\', ',', ':', '{', '}', '[', ']', '0', '1', '9', 'A', 'a', '-', '_', 'e', orig ^ 1, orig ^ 0x20, orig ^ 0x80} {
			if v != orig {
				out = append(out, v)
			}
		}
		return out
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewSealer(c.signer, c.key)
			if err != nil {
				t.Fatal(err)
			}
			wire, err := s.SealAt(c.h, []byte(c.pay), testT0)
			if err != nil {
				t.Fatal(err)
			}
			o := openerFor(c.h, c.key.Public(), testT0)
			tries := 0
			mutated := make([]byte, len(wire))
			for pos := range wire {
				for _, v := range values(wire[pos]) {
					copy(mutated, wire)
					mutated[pos] = v
					tries++
					if _, err := o.Open(mutated); err == nil {
						t.Fatalf("changing byte %d (%q) to %q still opens:\n%s", pos, wire[pos], v, mutated)
					}
					if top := o.Window.Top(); top != 0 {
						t.Fatalf("changing byte %d to %q recorded seq %d", pos, v, top)
					}
				}
			}
			if _, err := o.Open(wire); err != nil {
				t.Fatalf("original no longer opens: %v", err)
			}
			t.Logf("%d bytes, %d changes, all rejected", len(wire), tries)
		})
	}
}

// TestPropertyMetaEncoding: Seal writes meta strings with exactly the
// escapes \" and \\, anything else as is; Peek reads them back unchanged.
func TestPropertyMetaEncoding(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		g := newGen(seed)
		signer := g.metaString()
		s, _ := NewSealer(signer, testEd)
		wire, err := s.SealAt(deviceHeader(), []byte(`1`), testT0)
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := Peek(wire, 0)
		if err != nil || m.Signer != signer {
			t.Fatalf("seed %d: Peek = %q, %v", seed, m.Signer, err)
		}
		if bytes.Contains(wire, []byte(`\u`)) || !utf8.Valid(wire) {
			t.Fatalf("seed %d: unexpected encoding %s", seed, wire)
		}
	}
}
