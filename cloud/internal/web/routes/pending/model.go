package pending

import (
	"html"
	"sort"
	"strings"

	"github.com/a-h/templ"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Limit is how many pending key sets the page lists.
const Limit = 200

// Model is the pending keys page.
type Model struct {
	Page  app.Page
	Keys  []fleet.PendingKey
	Total int
	// Rejected are the newest Limit rejected key sets of RejectedTotal.
	Rejected      []fleet.RejectedKey
	RejectedTotal int
}

// rejectedWhen says when a key set was rejected, for people.
func rejectedWhen(k fleet.RejectedKey) string {
	if k.RejectedAt == nil {
		return "before decisions were recorded"
	}
	return app.Ago(*k.RejectedAt)
}

// rejectedStamp is rejectedWhen exactly, for the title.
func rejectedStamp(k fleet.RejectedKey) string {
	if k.RejectedAt == nil {
		return ""
	}
	return app.Stamp(*k.RejectedAt)
}

// rejectedBy names who rejected a key set.
func rejectedBy(k fleet.RejectedKey) string {
	if k.RejectedBy == "" {
		return "unknown"
	}
	return k.RejectedBy
}

// attrKeys returns the attribute names of a key set in order.
func attrKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// wrappingFingerprint is <code>fingerprint</code> with a <wbr> every 16
// characters, so that on a phone it wraps instead of pushing the row's
// button out of sight; copied, it is whole (a <wbr> adds no character).
func wrappingFingerprint(fp string) templ.Component {
	var parts []string
	if p, rest, ok := strings.Cut(fp, ":"); ok {
		parts, fp = append(parts, p+":"), rest
	}
	for len(fp) > 16 {
		parts, fp = append(parts, fp[:16]), fp[16:]
	}
	parts = append(parts, fp)
	for i, p := range parts {
		parts[i] = html.EscapeString(p)
	}
	return templ.Raw("<code>" + strings.Join(parts, "<wbr>") + "</code>")
}
