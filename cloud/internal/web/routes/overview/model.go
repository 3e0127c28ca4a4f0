package overview

import (
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Model is the fleet overview.
type Model struct {
	Page     app.Page
	Counts   fleet.Counts
	Activity []fleet.AuditEntry
	Calls    []fleet.Call
}
