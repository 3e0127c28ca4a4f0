package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Model is the device page. The optional parts are filled by the POST
// that asked for them (a plain form post renders the whole page with that
// part filled; htmx fetches only the part).
type Model struct {
	Page    app.Page
	Device  fleet.Device
	Keys    []fleet.KeySet
	Calls   []fleet.Call
	Console Console

	Methods    *Fetched[[]rpcproto.MethodInfo]
	Containers *Fetched[[]rpcproto.Container]
	Boot       *Fetched[json.RawMessage]
}

// Console is the RPC console's form and its last result.
type Console struct {
	Method  string
	Params  string
	Timeout string // seconds
	Error   string // the form was invalid
	Result  *fleet.Call
}

// Fetched is what one call to the device brought back: Value, or Err (a
// message for people) with the call's error.
type Fetched[T any] struct {
	Value T
	Err   string
	Call  fleet.Call
}

// LogsModel is the logs viewer.
type LogsModel struct {
	Page      app.Page
	Device    fleet.Device
	Container string
	Tail      string
	Since     string
	Error     string
	Lines     []rpcproto.LogLine
	Call      *fleet.Call
}

// Operator reports whether the page's user may call the device.
func (m Model) Operator() bool { return m.Page.Can(fleet.RoleOperator) }

// PendingKeys are the device's pending key sets, newest first: one accept
// button each, posting the fingerprint it shows.
func (m Model) PendingKeys() []fleet.KeySet {
	var ks []fleet.KeySet
	for _, k := range m.Keys {
		if k.Status == "pending" {
			ks = append(ks, k)
		}
	}
	return ks
}

// shortFP is the start of a fingerprint, enough to tell keys apart on a
// button (the whole one is in its title and the keys table).
func shortFP(fp string) string {
	if len(fp) > 19 {
		return fp[:19] + "…"
	}
	return fp
}

// Callable reports whether calls can reach the device now.
func (m Model) Callable() bool { return m.Device.Online && m.Device.Status == "accepted" }

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// pretty indents JSON for display; invalid JSON is returned as it is.
func pretty(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// rpcErrText formats a JSON-RPC error for people.
func rpcErrText(e *jsonrpc.Error) string {
	if e == nil {
		return ""
	}
	s := fmt.Sprintf("%d %s", e.Code, e.Message)
	if len(e.Data) > 0 && string(e.Data) != "null" {
		s += "\n" + pretty(e.Data)
	}
	return s
}

func duration(c fleet.Call) string {
	if c.FinishedAt == nil {
		return ""
	}
	return fmt.Sprintf("%d ms", c.DurationMS)
}

func tagsText(tags []string) string { return strings.Join(tags, ", ") }

func methodSelected(c Console, name string) bool { return c.Method == name }

// loadTrigger is the hx-trigger prefix that fetches a part when the page
// loads ("" when it should wait for a click).
func loadTrigger(onLoad bool) string {
	if onLoad {
		return "load, "
	}
	return ""
}
