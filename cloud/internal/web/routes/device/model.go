package device

import (
	"encoding/json"
	"sort"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/tags"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
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
	// Methods are what the device announced in its last state.report
	// (nil when it announced none): the page lists them without calling
	// the device.
	Methods []rpcproto.MethodInfo

	Containers *Fetched[[]rpcproto.Container]
	Boot       *Fetched[json.RawMessage]
}

// Console is the RPC console's form and its last result.
type Console struct {
	Method  string
	Other   string // a method typed in, which wins over the picker's
	Params  string
	Timeout string // seconds
	TTL     string // a duration: queue the call that long if the device is offline
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

// announcedMethods reads the methods out of the device's inventory (the
// params of its last state.report).
func announcedMethods(inv json.RawMessage) []rpcproto.MethodInfo {
	if len(inv) == 0 {
		return nil
	}
	var p rpcproto.StateReportParams
	if json.Unmarshal(inv, &p) != nil {
		return nil
	}
	return p.Methods
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

// tagsText is the tag field's value: the rule of package tags, so that
// saving it unchanged changes nothing.
func tagsText(ts []string) string { return tags.Format(ts) }

func methodSelected(c Console, name string) bool { return c.Method == name }
