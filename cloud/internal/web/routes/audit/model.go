package audit

import (
	"net/url"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Limit is how many rows the page shows.
const Limit = 200

// Model is the audit log page.
type Model struct {
	Page    app.Page
	Filter  fleet.AuditFilter
	Entries []fleet.AuditEntry
	ShowOrg bool
}

// Query is the filter as a query string.
func (m Model) Query() string {
	v := url.Values{}
	for k, s := range map[string]string{"actor": m.Filter.Actor, "action": m.Filter.Action, "target": m.Filter.Target} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if len(v) == 0 {
		return "/audit"
	}
	return "/audit?" + v.Encode()
}

func detail(e fleet.AuditEntry) string {
	if len(e.Detail) == 0 || string(e.Detail) == "null" {
		return ""
	}
	return string(e.Detail)
}
