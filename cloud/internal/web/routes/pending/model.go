package pending

import (
	"sort"

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
