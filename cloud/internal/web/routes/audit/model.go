package audit

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// PageSize is how many rows one page shows.
const PageSize = 100

// Model is the audit log page.
type Model struct {
	Page    app.Page
	Filter  fleet.AuditFilter
	Entries []fleet.AuditEntry
	ShowOrg bool
	// Older and Newer are the cursors of the pages around this one (row
	// ids; 0 when there is none).
	Older, Newer int64
}

// URL is the page with the current filter and a cursor ("before" or
// "after" a row id; "" for the newest rows).
func (m Model) URL(dir string, id int64) string {
	v := url.Values{}
	for k, s := range map[string]string{"actor": m.Filter.Actor, "action": m.Filter.Action, "target": m.Filter.Target} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if dir != "" {
		v.Set(dir, strconv.FormatInt(id, 10))
	}
	if len(v) == 0 {
		return "/audit"
	}
	return "/audit?" + v.Encode()
}

// Range says which rows the page shows: "100 rows, 2026-01-02 10:00:00Z
// back to 2026-01-01 09:00:00Z".
func (m Model) Range() string {
	n := len(m.Entries)
	if n == 0 {
		return ""
	}
	rows := "rows"
	if n == 1 {
		rows = "row"
	}
	return fmt.Sprintf("%d %s, %s back to %s", n, rows, app.Stamp(m.Entries[0].At), app.Stamp(m.Entries[n-1].At))
}

// First reports whether the page shows the newest rows.
func (m Model) First() bool { return m.Filter.Before == 0 && m.Filter.After == 0 }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
