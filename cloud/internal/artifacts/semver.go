package artifacts

import (
	"cmp"
	"regexp"
	"strings"
)

// semverRE is the regular expression of semver.org (2.0.0) for a version
// without a leading "v": MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], numeric
// identifiers without leading zeros.
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// nameRE is what an artifact name may be (see docs/api.md).
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// MaxVersionLen bounds a version string.
const MaxVersionLen = 128

// ValidName reports whether name is an artifact name: 1 to 64 of a-z 0-9 .
// _ - starting with a letter or digit.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// ValidVersion reports whether v is a semantic version 2.0.0 (no leading
// "v") of at most MaxVersionLen bytes.
func ValidVersion(v string) bool { return len(v) <= MaxVersionLen && semverRE.MatchString(v) }

// CompareVersions orders two valid versions by semver 2.0.0 precedence:
// -1 if a < b, 0 if they have the same precedence, +1 if a > b. Build
// metadata is ignored; a pre-release comes before its release; pre-release
// identifiers compare numerically when both are numeric, numeric ones
// before alphanumeric ones, else in ASCII order, and a shorter list of
// equal identifiers first. An invalid version sorts before every valid
// one (two invalid ones compare as strings), so the order is total.
func CompareVersions(a, b string) int {
	ma, mb := semverRE.FindStringSubmatch(a), semverRE.FindStringSubmatch(b)
	switch {
	case ma == nil && mb == nil:
		return strings.Compare(a, b)
	case ma == nil:
		return -1
	case mb == nil:
		return 1
	}
	for i := 1; i <= 3; i++ {
		if c := compareNumeric(ma[i], mb[i]); c != 0 {
			return c
		}
	}
	pa, pb := ma[4], mb[4]
	switch {
	case pa == "" && pb == "":
		return 0
	case pa == "":
		return 1
	case pb == "":
		return -1
	}
	ia, ib := strings.Split(pa, "."), strings.Split(pb, ".")
	for i := 0; i < len(ia) && i < len(ib); i++ {
		if c := compareIdent(ia[i], ib[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(ia), len(ib))
}

// compareNumeric compares decimal strings without leading zeros of any
// length (no overflow).
func compareNumeric(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func compareIdent(a, b string) int {
	na, nb := isNumeric(a), isNumeric(b)
	switch {
	case na && nb:
		return compareNumeric(a, b)
	case na:
		return -1
	case nb:
		return 1
	}
	return strings.Compare(a, b)
}

func isNumeric(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
