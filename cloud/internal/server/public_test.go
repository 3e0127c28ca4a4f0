package server

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePublicURL(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{name: "https", in: "https://bosun.example.com", want: "https://bosun.example.com"},
		{name: "trailing slash", in: "https://bosun.example.com/", want: "https://bosun.example.com"},
		{name: "port and case", in: "HTTPS://Bosun.Example.com:8443", want: "https://bosun.example.com:8443"},
		{name: "http", in: "http://10.0.0.5:8080", want: "http://10.0.0.5:8080"},
		{name: "IPv6", in: "https://[2001:db8::1]", want: "https://[2001:db8::1]"},
		{name: "no scheme", in: "bosun.example.com", err: "want http:// or https://"},
		{name: "wss", in: "wss://bosun.example.com", err: "want http:// or https://"},
		{name: "no host", in: "https://", err: "no host"},
		{name: "port only", in: "https://:443", err: "no host"},
		{name: "path", in: "https://example.com/bosun", err: "no path"},
		{name: "query", in: "https://example.com/?a=1", err: "no path"},
		{name: "fragment", in: "https://example.com/#x", err: "no path"},
		{name: "user", in: "https://me:pw@example.com", err: "no user"},
		{name: "bad port", in: "https://example.com:99999", err: "bad port"},
		{name: "junk", in: "https://exa mple.com", err: "public URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParsePublicURL(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := u.String(); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 127.0.0.1, 10.1.2.3/8 ,::1,, ::ffff:192.0.2.1 ")
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	if strings.Join(s, " ") != "127.0.0.1/32 10.0.0.0/8 ::1/128 192.0.2.1/32" {
		t.Errorf("got %v", s)
	}
	if got, err := ParseTrustedProxies(""); err != nil || got != nil {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"proxy.local", "10.0.0.0/33", "1.2.3", "fe80::1%eth0", "127.0.0.1:80"} {
		if _, err := ParseTrustedProxies("127.0.0.1," + bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: err = %v, want one naming it", bad, err)
		}
	}
}

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("127.0.0.1, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name    string
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{name: "no proxies trusted: the header is ignored", peer: "127.0.0.1", xff: []string{"203.0.113.7"}, want: "127.0.0.1"},
		{name: "untrusted peer: ignored", peer: "198.51.100.9", xff: []string{"203.0.113.7"}, trusted: trusted, want: "198.51.100.9"},
		{name: "trusted peer, no header", peer: "127.0.0.1", trusted: trusted, want: "127.0.0.1"},
		{name: "one hop", peer: "127.0.0.1", xff: []string{"203.0.113.7"}, trusted: trusted, want: "203.0.113.7"},
		{name: "a forged left part is skipped", peer: "127.0.0.1", xff: []string{"1.1.1.1, 203.0.113.7"}, trusted: trusted, want: "203.0.113.7"},
		{name: "chain of trusted proxies", peer: "127.0.0.1", xff: []string{"203.0.113.7, 10.0.0.2", "10.0.0.3"}, trusted: trusted, want: "203.0.113.7"},
		{name: "only trusted hops: the leftmost", peer: "127.0.0.1", xff: []string{"10.0.0.2, 10.0.0.3"}, trusted: trusted, want: "10.0.0.2"},
		{name: "junk ends the walk at the last trusted hop", peer: "127.0.0.1", xff: []string{"203.0.113.7, junk, 10.0.0.3"}, trusted: trusted, want: "10.0.0.3"},
		{name: "junk at the right: the peer", peer: "127.0.0.1", xff: []string{"junk"}, trusted: trusted, want: "127.0.0.1"},
		{name: "with ports", peer: "127.0.0.1", xff: []string{"[2001:db8::7]:5555, 10.0.0.3:80"}, trusted: trusted, want: "2001:db8::7"},
		{name: "IPv4-mapped", peer: "::ffff:127.0.0.1", xff: []string{"::ffff:203.0.113.7"}, trusted: trusted, want: "203.0.113.7"},
		{name: "empty entries are junk", peer: "127.0.0.1", xff: []string{""}, trusted: trusted, want: "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClientAddr(a(tc.peer), tc.xff, tc.trusted); got != a(tc.want) {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
