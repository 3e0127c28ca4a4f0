package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// Output for people: tables and short lines. --json prints the API's own
// shapes instead.

func (a *app) table(header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

func (a *app) deviceTable(list wire.DeviceList) {
	if len(list.Items) == 0 {
		fmt.Fprintln(a.stdout, "no devices")
		return
	}
	tw := a.table("ID\tSTATUS\tONLINE\tTAGS\tLAST SEEN\tFINGERPRINT")
	for _, d := range list.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, deviceStatus(d), yesNo(d.Online),
			orDash(strings.Join(d.Tags, ",")), a.ago(d.LastSeen), orDash(d.Fingerprint))
	}
	tw.Flush()
	if list.Total > len(list.Items) {
		fmt.Fprintf(a.stdout, "%d of %d devices (use --limit and --offset for more)\n", len(list.Items), list.Total)
	}
}

func deviceStatus(d wire.Device) string {
	if d.KeyChanged {
		return d.Status + " (key changed)"
	}
	return d.Status
}

func (a *app) deviceDetail(d wire.Device, ks []wire.KeySet) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	online := yesNo(d.Online)
	if d.Online && d.Replica != "" {
		online += " (replica " + d.Replica + ")"
	}
	rows := [][2]string{
		{"ID", d.ID},
		{"Status", deviceStatus(d)},
		{"Online", online},
		{"Fingerprint", orDash(d.Fingerprint)},
		{"Algorithm", orDash(d.Alg)},
		{"Tags", orDash(strings.Join(d.Tags, ", "))},
		{"First seen", a.when(d.FirstSeen)},
		{"Last seen", a.when(d.LastSeen)},
		{"Attributes", orDash(mapText(d.Attributes))},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	tw.Flush()
	if len(d.Inventory) > 0 && string(d.Inventory) != "null" {
		fmt.Fprintf(a.stdout, "Inventory\n%s\n", prettyJSON(d.Inventory))
	}
	if len(ks) > 0 {
		fmt.Fprintln(a.stdout)
		tw := a.table("KEY\tSTATUS\tALG\tFINGERPRINT\tFIRST SEEN\tLAST SEEN")
		for _, k := range ks {
			st := k.Status
			if k.KeyChanged {
				st += " (key changed)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", k.ID, st, k.Alg, k.Fingerprint, a.ago(k.FirstSeen), a.ago(k.LastSeen))
		}
		tw.Flush()
	}
}

func (a *app) callTable(calls []wire.Call) {
	if len(calls) == 0 {
		fmt.Fprintln(a.stdout, "no calls")
		return
	}
	tw := a.table("ID\tDEVICE\tMETHOD\tSTATUS\tDURATION\tCREATED\tACTOR")
	for _, c := range calls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.DeviceID, c.Method, callStatus(c),
			duration(c.DurationMS), a.ago(c.CreatedAt), orDash(c.Actor))
	}
	tw.Flush()
}

func callStatus(c wire.Call) string {
	if c.Error != nil {
		return fmt.Sprintf("%s (%d)", c.Status, c.Error.Code)
	}
	return c.Status
}

func (a *app) callDetail(c wire.Call) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	rows := [][2]string{
		{"ID", c.ID}, {"Device", c.DeviceID}, {"Method", c.Method}, {"Status", c.Status},
		{"Actor", orDash(c.Actor)}, {"Created", a.when(c.CreatedAt)},
		{"Duration", duration(c.DurationMS)},
	}
	if c.ExpiresAt != nil {
		rows = append(rows, [2]string{"Expires", a.when(*c.ExpiresAt)})
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	tw.Flush()
	if len(c.Params) > 0 {
		fmt.Fprintf(a.stdout, "Params\n%s\n", prettyJSON(c.Params))
	}
	switch {
	case c.Error != nil:
		fmt.Fprintln(a.stdout, rpcErrorText(c.Error))
	case len(c.Result) > 0:
		fmt.Fprintf(a.stdout, "Result\n%s\n", prettyJSON(c.Result))
	}
}

func (a *app) auditTable(entries []wire.AuditEntry) {
	if len(entries) == 0 {
		fmt.Fprintln(a.stdout, "no audit entries")
		return
	}
	tw := a.table("AT\tACTOR\tACTION\tTARGET\tOUTCOME")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.In(displayLoc).Format(time.DateTime), e.Actor, e.Action, orDash(e.Target), orDash(e.Outcome))
	}
	tw.Flush()
}

func (a *app) tokenTable(toks []wire.Token) {
	if len(toks) == 0 {
		fmt.Fprintln(a.stdout, "no tokens")
		return
	}
	tw := a.table("ID\tNAME\tCREATED\tLAST USED\tREVOKED")
	for _, t := range toks {
		last := "never"
		if t.LastUsed != nil {
			last = a.ago(*t.LastUsed)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", t.ID, t.Name, a.ago(t.CreatedAt), last, yesNo(t.Revoked))
	}
	tw.Flush()
}

func (a *app) printEvent(ev wire.Event) {
	var sb strings.Builder
	at := ev.At
	if at.IsZero() {
		at = a.now()
	}
	fmt.Fprintf(&sb, "%s  %-21s %s", at.In(displayLoc).Format(time.TimeOnly), ev.Type, orDash(ev.DeviceID))
	if ev.CallID != "" {
		fmt.Fprintf(&sb, " call=%s", ev.CallID)
	}
	if len(ev.Data) > 0 && string(ev.Data) != "null" && string(ev.Data) != "{}" {
		fmt.Fprintf(&sb, " %s", ev.Data)
	}
	io.WriteString(a.stdout, sb.String()+"\n")
}

// ago says how far t is from now, for tables: "5m ago" in the past, "in
// 59m" in the future (a queued call's expiry). Each unit is rounded down.
// Less than a second ahead reads "just now": a clock a little ahead of
// ours is no future.
func (a *app) ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := a.now().Sub(t)
	switch {
	case d <= -time.Second:
		return "in " + span(-d)
	case d < 0:
		return "just now"
	}
	return span(d) + " ago"
}

// span is d in its largest whole unit: 59s, 59m, 47h, 2d.
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// when is a full local time and how long ago it was.
func (a *app) when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.In(displayLoc).Format(time.DateTime) + " (" + a.ago(t) + ")"
}

func duration(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

func mapText(m map[string]string) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func encodeDER(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// displayLoc is the zone times are printed in: the machine's. Tests set it
// to UTC (setting time.Local instead races with timers other packages
// start at init).
var displayLoc = time.Local
