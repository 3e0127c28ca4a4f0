package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/a-h/templ"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
)

// InlineLimit is how much of a call's params or result a list shows; the
// call's own page (CallURL) shows all of it.
const InlineLimit = 16 << 10

// CallURL is the page of one call.
func CallURL(id string) templ.SafeURL { return templ.SafeURL("/calls/" + url.PathEscape(id)) }

// Pretty indents JSON for display; invalid JSON is returned as it is.
func Pretty(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// noParams reports whether a call was made without params (none, null or {}).
func noParams(p []byte) bool {
	t := string(bytes.TrimSpace(p))
	return t == "" || t == "null" || t == "{}"
}

// clip cuts s to at most n bytes (on a rune boundary) and says whether it did.
func clip(s string, n int) (string, bool) {
	if n <= 0 || len(s) <= n {
		return s, false
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n], true
}

// RPCErrText is a JSON-RPC error as the CLI prints it: "error -32602:
// Invalid params", then its data, indented, on the next lines.
func RPCErrText(e *jsonrpc.Error) string {
	if e == nil {
		return ""
	}
	s := fmt.Sprintf("error %d: %s", e.Code, e.Message)
	if HasData(e) {
		s += "\n" + Pretty(e.Data)
	}
	return s
}

// HasData reports whether a JSON-RPC error carries data.
func HasData(e *jsonrpc.Error) bool {
	return e != nil && len(e.Data) > 0 && string(e.Data) != "null"
}

// Duration is how long a finished call took ("" while it runs).
func Duration(c fleet.Call) string {
	if c.FinishedAt == nil {
		return ""
	}
	return fmt.Sprintf("%d ms", c.DurationMS)
}

// shortErr is the one-line form of a call's error for a list.
func shortErr(c fleet.Call) string {
	if c.Error == nil {
		return ""
	}
	return fmt.Sprintf("%d %s", c.Error.Code, c.Error.Message)
}

// Waiting explains a call that has no outcome yet ("" for one that has).
func Waiting(c fleet.Call) string {
	switch c.Status {
	case "queued":
		if c.ExpiresAt != nil {
			return "Queued: it is delivered when the device is back online, if that is before " + app.Stamp(*c.ExpiresAt) + " (" + until(*c.ExpiresAt) + "); it expires then."
		}
		return "Queued: it is delivered when the device is back online."
	case "sent":
		return "Sent: waiting for the device's answer."
	case "delivered":
		return "Delivered to the device: waiting for its answer."
	}
	return ""
}

// until says how far ahead t is, for people.
func until(t time.Time) string {
	d := t.Sub(app.Now())
	switch {
	case d <= 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("in %ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("in %dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("in %dh", int(d.Hours()))
	}
	return fmt.Sprintf("in %dd", int(d.Hours()/24))
}

// metaText says who made a call and when: "By ops@example.com,
// 2026-01-02 10:00:00Z; finished 2026-01-02 10:00:01Z."
func metaText(c fleet.Call) string {
	s := "By " + c.Actor + ", " + app.Stamp(c.CreatedAt)
	if c.FinishedAt != nil {
		s += "; finished " + app.Stamp(*c.FinishedAt)
	}
	return s + "."
}
