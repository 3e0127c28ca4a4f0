package devices

import (
	"net/url"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// PageSize is how many devices one page lists.
const PageSize = 50

// Filter is the devices page's query string.
type Filter struct {
	Status string // "" or a device status
	Online string // "", "yes" or "no"
	Tag    string
	Text   string
	Page   int // 1-based
}

// Query is the filter as a query string, for another page number.
func (f Filter) Query(page int) string {
	v := url.Values{}
	for k, s := range map[string]string{"status": f.Status, "online": f.Online, "tag": f.Tag, "q": f.Text} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return v.Encode()
}

// Statuses are the choices of the status filter.
var Statuses = []string{"pending", "accepted", "rejected", "preauthorized", "decommissioned"}

// Model is the devices page.
type Model struct {
	Page    app.Page
	Filter  Filter
	Devices []fleet.Device
	Total   int
	Pages   int
	// ShowOrg adds an organisation column (a super user seeing all).
	ShowOrg bool
	// Selected are the boxes to show ticked (a refused bulk action keeps
	// the selection), BulkTag the tag field's value.
	Selected map[string]bool
	BulkTag  string
}

// ConfirmModel asks before a bulk decommission.
type ConfirmModel struct {
	Page app.Page
	IDs  []string
	Back string // the list the form came from
}

// URL is the page's URL with the current filter and page number n.
func (m Model) URL(n int) string {
	q := m.Filter.Query(n)
	if q == "" {
		return "/devices"
	}
	return "/devices?" + q
}

// fanOutURL is the fan-out form, for tag if one is filtered on.
func fanOutURL(tag string) string {
	if tag == "" {
		return "/fanout"
	}
	return "/fanout?" + url.Values{"tag": {tag}}.Encode()
}

// countNoun is "1 device" or "n devices".
func countNoun(n int) string {
	if n == 1 {
		return "1 device"
	}
	return strconv.Itoa(n) + " devices"
}
