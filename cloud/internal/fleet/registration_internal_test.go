package fleet

import "testing"

func TestSourceAddr(t *testing.T) {
	for _, tc := range []struct{ name, remote, want string }{
		{"ipv4 with port", "10.0.0.1:5555", "10.0.0.1"},
		{"ipv4 bare", "10.0.0.1", "10.0.0.1"},
		{"ipv6 counts as its /64", "[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"same /64, other host", "[2001:db8:1:2:bbbb::7]:9", "2001:db8:1:2::/64"},
		{"ipv4-mapped ipv6 is ipv4", "[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"zone dropped", "[fe80::1%eth0]:80", "fe80::/64"},
		{"not an address", "pipe", "pipe"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sourceAddr(tc.remote); got != tc.want {
				t.Fatalf("sourceAddr(%q) = %q, want %q", tc.remote, got, tc.want)
			}
		})
	}
}
