package artifacts

import (
	"cmp"
	"math/rand"
	"slices"
	"testing"
)

func TestValidVersion(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"1.0.0", true}, {"0.0.0", true}, {"1.2.3-alpha.1+build.5", true}, {"1.0.0-0.3.7", true},
		{"1.0.0-x-y-z.--", true}, {"1.0.0+21AF26D3----117B344092BD", true},
		{"99999999999999999999.0.0", true},
		{"v1.0.0", false}, {"1.0", false}, {"1", false}, {"01.0.0", false}, {"1.02.0", false},
		{"1.0.0-01", false}, {"1.0.0-", false}, {"1.0.0+", false}, {"1.0.0-a..b", false},
		{"1.0.0 ", false}, {"", false}, {"1.0.0-ä", false},
	} {
		if got := ValidVersion(tc.v); got != tc.ok {
			t.Errorf("ValidVersion(%q) = %v, want %v", tc.v, got, tc.ok)
		}
	}
	long := "1.0.0-" + string(make([]byte, 0))
	for len(long) < MaxVersionLen {
		long += "a"
	}
	if !ValidVersion(long) || ValidVersion(long+"a") {
		t.Errorf("the length bound %d: at it valid, beyond it invalid", MaxVersionLen)
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		n  string
		ok bool
	}{
		{"hello-worker", true}, {"a", true}, {"0.x_y-z", true},
		{"", false}, {"-a", false}, {".a", false}, {"Hello", false}, {"a/b", false}, {"a b", false},
		{"a" + string(make([]byte, 0)), true},
	} {
		if got := ValidName(tc.n); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.n, got, tc.ok)
		}
	}
	n64 := ""
	for len(n64) < 64 {
		n64 += "a"
	}
	if !ValidName(n64) || ValidName(n64+"a") {
		t.Error("a name of 64 bytes is valid, of 65 is not")
	}
}

// The ordering example of semver.org 2.0.0 §11, plus major/minor/patch
// and long numbers.
func TestCompareVersionsOrder(t *testing.T) {
	ordered := []string{
		"0.9.9",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.0.1",
		"1.1.0",
		"1.10.0",
		"2.0.0",
		"10.0.0",
		"18446744073709551616.0.0", // beyond uint64
	}
	for i := range ordered {
		for j := range ordered {
			want := cmp.Compare(i, j)
			if got := CompareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	shuffled := slices.Clone(ordered)
	rand.New(rand.NewSource(1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	slices.SortFunc(shuffled, CompareVersions)
	if !slices.Equal(shuffled, ordered) {
		t.Errorf("sorted %v, want %v", shuffled, ordered)
	}
}

func TestCompareVersionsBuildIgnored(t *testing.T) {
	if c := CompareVersions("1.0.0+a", "1.0.0+b"); c != 0 {
		t.Errorf("build metadata changes precedence: %d", c)
	}
	if c := CompareVersions("1.0.0-rc.1+x", "1.0.0"); c != -1 {
		t.Errorf("1.0.0-rc.1+x vs 1.0.0 = %d, want -1", c)
	}
	if c := CompareVersions("bad", "0.0.0"); c != -1 {
		t.Errorf("an invalid version sorts first: got %d", c)
	}
}
