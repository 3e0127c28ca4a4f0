package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/client"
	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// deploymentsCommand is `bosun deployments`: create, list, show (and
// watch), pause, resume and abort OTA deployments, and the fleet's version
// breakdown. Its line in the command table (cli.go) refers to it.
var deploymentsCommand = command{name: "deployments",
	synopsis: "[list] [--state S] [--json]\n" +
		"show ID [--watch] [--every 2s] [--timeout 1h] [--json]\n" +
		"create NAME VERSION [--devices ID,ID] [--tag T] [--phases 10,100] [--max-in-flight N] [--failure-threshold P] " +
		"[--max-attempts N] [--commit-timeout 300s] [--not-before RFC3339] [--json]\n" +
		"pause ID\nresume ID\nabort ID\nversions NAME [--json]",
	summary: "create, list, show, pause, resume or abort OTA deployments",
	args: []arg{
		{"list", "list the deployments (the default), newest first"},
		{"show ID", "show a deployment: its state, phase, counts and every device's status, percent, attempts and reason"},
		{"create NAME VERSION", "deploy VERSION of the artifact NAME to --devices and/or every device with --tag (now and while it runs)"},
		{"pause ID", "pause a deployment: nothing new is sent, devices in flight go on"},
		{"resume ID", "resume a paused deployment (the failures so far are accepted)"},
		{"abort ID", "abort a deployment for good: not started devices never start, devices in flight are told to stop"},
		{"versions NAME", "how many devices run each version of the artifact NAME"},
	},
	run: cmdDeployments,
}

// versionsCommand is `bosun versions NAME`, the same as `bosun deployments
// versions NAME`.
var versionsCommand = command{name: "versions", synopsis: "NAME [--json]",
	summary: "how many devices run each version of an OTA artifact",
	args:    []arg{{"NAME", "the artifact name, e.g. hello"}},
	run: func(ctx context.Context, a *app, args []string) error {
		fs := a.flags("versions")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("want NAME, the artifact name")
		}
		return a.versions(ctx, pos[0])
	},
}

// createFlags are the flags of deployments create.
type createFlags struct {
	devices, tag, phases, commitTimeout, notBefore string
	maxInFlight, threshold, maxAttempts            int
}

func cmdDeployments(ctx context.Context, a *app, args []string) error {
	fs := a.flags("deployments")
	var state string
	var watch bool
	var every, timeout time.Duration
	var cf createFlags
	fs.StringVar(&state, "state", "", "list: only deployments in this state (scheduled, running, paused, aborted, completed)")
	fs.BoolVar(&watch, "watch", false, "show: print again every --every until the deployment is over or paused with nothing in flight (or Ctrl-C, or --timeout)")
	fs.DurationVar(&every, "every", 2*time.Second, "show --watch: how often to print")
	fs.DurationVar(&timeout, "timeout", time.Hour, "show --watch: stop watching after this long")
	fs.StringVar(&cf.devices, "devices", "", "create: the devices, comma-separated ids")
	fs.StringVar(&cf.tag, "tag", "", "create: every device with this tag, now and while the deployment runs")
	fs.StringVar(&cf.phases, "phases", "", "create: cumulative percents of the devices per phase, e.g. 10,100 (default 100: one phase)")
	fs.IntVar(&cf.maxInFlight, "max-in-flight", 0, "create: devices updating at once (default 50)")
	fs.IntVar(&cf.threshold, "failure-threshold", 20, "create: percent of a phase's devices that may fail before it pauses itself")
	fs.IntVar(&cf.maxAttempts, "max-attempts", 0, "create: attempts per device before it is set aside (default 3)")
	fs.StringVar(&cf.commitTimeout, "commit-timeout", "", "create: time the new version has to commit, e.g. 300s or 300 (default 300s)")
	fs.StringVar(&cf.notBefore, "not-before", "", "create: start no earlier than this time (RFC 3339, e.g. 2026-12-24T02:00:00Z)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	op := "list"
	if len(pos) > 0 {
		op = pos[0]
	}
	var id int64
	switch {
	case op == "list" && len(pos) == 1, len(pos) == 0:
	case op == "create" && len(pos) == 3:
	case op == "versions" && len(pos) == 2:
		return a.versions(ctx, pos[1])
	case (op == "show" || op == "pause" || op == "resume" || op == "abort") && len(pos) == 2:
		if id, err = strconv.ParseInt(pos[1], 10, 64); err != nil || id <= 0 {
			return usagef("deployment ID %q: want a number", pos[1])
		}
	default:
		return usagef("want list (or nothing), show ID, create NAME VERSION, pause ID, resume ID, abort ID or versions NAME")
	}
	if watch && (op != "show" || every <= 0 || timeout <= 0) {
		return usagef("--watch goes with show ID, and --every and --timeout must be positive")
	}
	var req wire.DeploymentRequest
	if op == "create" {
		if req, err = cf.request(fs, pos[1], pos[2]); err != nil {
			return err
		}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	switch op {
	case "create":
		d, err := c.CreateDeployment(ctx, req)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(d)
		}
		fmt.Fprintf(a.stdout, "created deployment %d: %s %s to %d devices, %s\n", d.ID, d.Name, d.Version, d.Total, d.State)
		return nil
	case "pause", "resume", "abort":
		d, err := c.DeploymentAction(ctx, id, op)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(d)
		}
		fmt.Fprintf(a.stdout, "deployment %d is %s\n", d.ID, d.State)
		return nil
	case "show":
		return a.showDeployment(ctx, c, id, watch, every, timeout)
	}
	list, err := c.ListDeployments(ctx, state, 0)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(a.stdout, "no deployments")
		return nil
	}
	tw := a.table("ID\tARTIFACT\tSTATE\tPHASE\tDEVICES\tSUCCEEDED\tFAILED\tCREATED")
	for _, d := range list {
		fmt.Fprintf(tw, "%d\t%s %s\t%s\t%s\t%d\t%d\t%d\t%s by %s\n", d.ID, d.Name, d.Version, d.State, phaseText(d),
			d.Total, d.Counts["succeeded"], d.Counts["failed"]+d.Counts["rolled_back"], a.ago(d.CreatedAt), d.CreatedBy)
	}
	tw.Flush()
	return nil
}

// request makes the create request from the flags set.
func (cf createFlags) request(fs *flag.FlagSet, name, version string) (wire.DeploymentRequest, error) {
	req := wire.DeploymentRequest{Name: name, Version: version, Tag: cf.tag, MaxInFlight: cf.maxInFlight, MaxAttempts: cf.maxAttempts}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cf.devices != "" {
		for _, d := range strings.Split(cf.devices, ",") {
			if d = strings.TrimSpace(d); d != "" {
				req.Devices = append(req.Devices, d)
			}
		}
	}
	if req.Devices == nil && req.Tag == "" {
		return req, usagef("name the devices (--devices ID,ID), a tag (--tag T), or both")
	}
	if cf.phases != "" {
		for _, p := range strings.Split(cf.phases, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "%")))
			if err != nil {
				return req, usagef("--phases %q: want cumulative percents, e.g. 10,50,100", cf.phases)
			}
			req.Phases = append(req.Phases, n)
		}
	}
	if set["failure-threshold"] {
		t := cf.threshold
		req.FailureThreshold = &t
	}
	if cf.commitTimeout != "" {
		secs, err := strconv.Atoi(cf.commitTimeout)
		if err != nil {
			d, derr := time.ParseDuration(cf.commitTimeout)
			if derr != nil || d%time.Second != 0 {
				return req, usagef("--commit-timeout %q: want seconds (300) or a duration in whole seconds (5m)", cf.commitTimeout)
			}
			secs = int(d / time.Second)
		}
		req.CommitTimeout = &secs
	}
	if cf.notBefore != "" {
		t, err := time.Parse(time.RFC3339, cf.notBefore)
		if err != nil {
			return req, usagef("--not-before %q: want an RFC 3339 time, e.g. 2026-12-24T02:00:00Z", cf.notBefore)
		}
		req.NotBefore = &t
	}
	return req, nil
}

// over reports whether a deployment will not change any more by itself:
// completed, or aborted or paused with no device in flight (a paused one
// waits for an operator).
func over(d wire.Deployment) bool {
	flying := d.Counts["sent"] + d.Counts["downloading"] + d.Counts["installing"] + d.Counts["awaiting_commit"]
	switch d.State {
	case "completed":
		return true
	case "aborted", "paused":
		return flying == 0
	}
	return false
}

func (a *app) showDeployment(ctx context.Context, c *client.Client, id int64, watch bool, every, timeout time.Duration) error {
	if watch {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	t := time.NewTicker(max(every, time.Millisecond))
	defer t.Stop()
	for first := true; ; first = false {
		d, err := c.Deployment(ctx, id)
		if err != nil {
			if !first && ctx.Err() != nil {
				return nil // watched until Ctrl-C or --timeout
			}
			return err
		}
		if !first && !a.json {
			fmt.Fprintln(a.stdout)
		}
		if a.json {
			if err := a.printJSON(d); err != nil {
				return err
			}
		} else {
			a.deploymentDetail(d)
		}
		if !watch || over(d.Deployment) {
			if watch && d.State == "paused" && !a.json {
				fmt.Fprintf(a.stdout, "\npaused, nothing in flight: bosun deployments resume %d (or abort %d)\n", id, id)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// phaseText is "k/n" (1-based) with the phase's percent.
func phaseText(d wire.Deployment) string {
	if len(d.Phases) == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d (%d%%)", d.Phase+1, len(d.Phases), d.Phases[min(d.Phase, len(d.Phases)-1)])
}

// statusOrder is the order counts are printed in.
var statusOrder = []string{"pending", "sent", "downloading", "installing", "awaiting_commit", "succeeded", "failed", "rolled_back", "aborted"}

func (a *app) deploymentDetail(d wire.DeploymentDetail) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Deployment\t%d: %s %s\n", d.ID, d.Name, d.Version)
	st := d.State
	if d.Reason != "" {
		st += ": " + d.Reason
	}
	fmt.Fprintf(tw, "State\t%s\n", st)
	phases := make([]string, len(d.Phases))
	for i, p := range d.Phases {
		phases[i] = strconv.Itoa(p) + "%"
	}
	if n := len(d.Phases); n > 0 {
		k := min(d.Phase, n-1)
		all := ""
		if n > 1 {
			all = "; phases " + strings.Join(phases, ", ")
		}
		fmt.Fprintf(tw, "Phase\t%d of %d (up to %d%% of the devices%s)\n", k+1, n, d.Phases[k], all)
	}
	var counts []string
	for _, s := range statusOrder {
		if n := d.Counts[s]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	fmt.Fprintf(tw, "Devices\t%d: %s\n", d.Total, orDash(strings.Join(counts, ", ")))
	target := orDash(strings.Join(d.Devices, ","))
	if d.Tag != "" {
		target += " + tag " + d.Tag
	}
	fmt.Fprintf(tw, "Target\t%s\n", target)
	fmt.Fprintf(tw, "Limits\tmax in flight %d, failure threshold %d%%, max attempts %d, commit timeout %ds\n",
		d.MaxInFlight, d.FailureThreshold, d.MaxAttempts, d.CommitTimeout)
	if d.NotBefore.After(d.CreatedAt) {
		fmt.Fprintf(tw, "Not before\t%s\n", a.when(d.NotBefore))
	}
	fmt.Fprintf(tw, "Created\t%s by %s\n", a.when(d.CreatedAt), d.CreatedBy)
	if d.FinishedAt != nil {
		fmt.Fprintf(tw, "Finished\t%s\n", a.when(*d.FinishedAt))
	}
	tw.Flush()
	if len(d.Members) == 0 {
		return
	}
	fmt.Fprintln(a.stdout)
	t := a.table("DEVICE\tPHASE\tSTATUS\tPERCENT\tATTEMPTS\tREASON")
	for _, m := range d.Members {
		pct := "-"
		if m.Percent != nil {
			pct = strconv.Itoa(*m.Percent) + "%"
		}
		fmt.Fprintf(t, "%s\t%d\t%s\t%s\t%d\t%s\n", m.DeviceID, m.Phase+1, m.Status, pct, m.Attempts, orDash(m.Reason))
	}
	t.Flush()
}

func (a *app) versions(ctx context.Context, name string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	vs, err := c.OTAVersions(ctx, name)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(vs)
	}
	if len(vs.Items) == 0 {
		fmt.Fprintln(a.stdout, "no devices")
		return nil
	}
	tw := a.table("VERSION\tDEVICES")
	for _, v := range vs.Items {
		ver := v.Version
		if ver == "" {
			ver = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%d\n", ver, v.Devices)
	}
	tw.Flush()
	return nil
}
