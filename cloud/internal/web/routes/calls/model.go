package calls

import (
	"fmt"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// CallModel is the page of one call.
type CallModel struct {
	Page app.Page
	Call fleet.Call
}

// Form is the fan-out form.
type Form struct {
	Tag, Method, Params string
	Timeout             string // seconds
}

// Model is the fan-out page.
type Model struct {
	Page    app.Page
	Form    Form
	Tags    []string // the tags in use, as suggestions
	Devices int      // how many devices are being called
	Error   string   // the form was refused; nothing was called
}

// summaryText counts the outcomes of a fan-out for people.
func summaryText(s fleet.FanOutSummary, shown int) string {
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{s.Succeeded, "succeeded"}, {s.Failed, "failed"}, {s.Offline, "offline"}, {s.TimedOut, "timed out"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if len(parts) == 0 {
		parts = []string{"no answer"}
	}
	noun := "devices"
	if s.Total == 1 {
		noun = "device"
	}
	return fmt.Sprintf("%d %s: %s.", s.Total, noun, strings.Join(parts, ", "))
}
