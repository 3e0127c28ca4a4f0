package deployments

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/ui"
)

// ListLimit is how many deployments the list shows, newest first.
const ListLimit = 100

// MaxDeviceRows bounds the per-device table of a deployment's page; the
// page says how many rows it leaves out (the status filter and the CLI,
// bosun deployments show, reach the others).
const MaxDeviceRows = 500

// DeviceStatuses are the per-device statuses, in the order of a rollout.
var DeviceStatuses = []string{fleet.DevPending, fleet.DevSent, fleet.DevDownloading, fleet.DevInstalling,
	fleet.DevAwaitingCommit, fleet.DevSucceeded, fleet.DevFailed, fleet.DevRolledBack, fleet.DevAborted}

// ListModel is the deployments list.
type ListModel struct {
	Page        app.Page
	State       string
	Deployments []fleet.Deployment
	ShowOrg     bool
}

// Form is the new-deployment form's fields as typed.
type Form struct {
	Artifact         string // NAME@VERSION
	Devices          string
	Tag              string
	Phases           string
	MaxInFlight      string
	FailureThreshold string
	MaxAttempts      string
	CommitTimeout    string
	NotBefore        string
}

// FormModel is the new-deployment page.
type FormModel struct {
	Page      app.Page
	Form      Form
	Artifacts []fleet.Artifact // the organisation's, newest version first per name
}

// ConfirmModel asks before an abort.
type ConfirmModel struct {
	Page       app.Page
	Deployment fleet.Deployment
}

// Model is a deployment's page.
type Model struct {
	Page       app.Page
	Deployment fleet.Deployment
	Phases     []Phase
	Devices    []fleet.DeploymentDevice // at most MaxDeviceRows of those with Status
	Shown      int                      // len(Devices)
	Matching   int                      // devices with Status
	Status     string                   // the table's status filter ("" all)
	// Threshold is the failure threshold's state in the current phase.
	Threshold Threshold
}

// Phase is one phase of a deployment as the page shows it.
type Phase struct {
	N       int // 1-based
	Percent int
	State   string // done, current, waiting
	Members int
	Done    int // members in a final status
}

// Threshold is how close the current phase is to pausing the deployment.
type Threshold struct {
	Percent int // the threshold
	Failed  int // final failures in the current phase
	Members int // members of the current phase
}

// Exceeded reports whether the failures are over the threshold.
func (t Threshold) Exceeded() bool {
	return t.Members > 0 && t.Failed*100 > t.Percent*t.Members
}

func (t Threshold) String() string {
	return fmt.Sprintf("%d of %d failed (threshold %d%%)", t.Failed, t.Members, t.Percent)
}

// final reports whether a member's status is final.
func final(st string) bool {
	switch st {
	case fleet.DevSucceeded, fleet.DevFailed, fleet.DevRolledBack, fleet.DevAborted:
		return true
	}
	return false
}

// inFlight reports whether a member is between sent and awaiting_commit.
func inFlight(st string) bool {
	switch st {
	case fleet.DevSent, fleet.DevDownloading, fleet.DevInstalling, fleet.DevAwaitingCommit:
		return true
	}
	return false
}

// Finished reports whether a deployment is over.
func Finished(d fleet.Deployment) bool {
	return d.State == fleet.DeploymentCompleted || d.State == fleet.DeploymentAborted
}

func phasesOf(d fleet.Deployment) []int {
	if len(d.Spec.Phases) == 0 {
		return []int{100}
	}
	return d.Spec.Phases
}

func newModel(p app.Page, d fleet.Deployment, devs []fleet.DeploymentDevice, status string) Model {
	m := Model{Page: p, Deployment: d, Status: status}
	ps := phasesOf(d)
	for i, pc := range ps {
		ph := Phase{N: i + 1, Percent: pc, State: "waiting"}
		switch {
		case d.State == fleet.DeploymentCompleted || i < d.Phase:
			ph.State = "done"
		case i == d.Phase:
			ph.State = "current"
		}
		m.Phases = append(m.Phases, ph)
	}
	m.Threshold.Percent = d.Spec.FailureThreshold
	if m.Threshold.Percent < 0 {
		m.Threshold.Percent = 0
	}
	for _, dv := range devs {
		if dv.Phase >= 0 && dv.Phase < len(m.Phases) {
			m.Phases[dv.Phase].Members++
			if final(dv.Status) {
				m.Phases[dv.Phase].Done++
			}
		}
		if dv.Phase == d.Phase {
			m.Threshold.Members++
			if dv.Status == fleet.DevFailed || dv.Status == fleet.DevRolledBack {
				m.Threshold.Failed++
			}
		}
		if status != "" && dv.Status != status {
			continue
		}
		m.Matching++
		if len(m.Devices) < MaxDeviceRows {
			m.Devices = append(m.Devices, dv)
		}
	}
	m.Shown = len(m.Devices)
	return m
}

// Path is a deployment's page.
func Path(id int64) string { return "/deployments/" + strconv.FormatInt(id, 10) }

func actionPath(id int64, act string) string { return Path(id) + "/" + act }

func statusPath(id int64, status string) string {
	if status == "" {
		return Path(id)
	}
	return Path(id) + "?status=" + status
}

// progress draws a deployment's bar: succeeded, failed, aborted, in flight.
func progress(d fleet.Deployment) []ui.Segment {
	c := d.Counts
	fl := c[fleet.DevSent] + c[fleet.DevDownloading] + c[fleet.DevInstalling] + c[fleet.DevAwaitingCommit]
	bad := c[fleet.DevFailed] + c[fleet.DevRolledBack]
	return []ui.Segment{
		{N: c[fleet.DevSucceeded], Class: "ok", Label: fmt.Sprintf("%d succeeded", c[fleet.DevSucceeded])},
		{N: bad, Class: "bad", Label: fmt.Sprintf("%d failed or rolled back", bad)},
		{N: c[fleet.DevAborted], Class: "muted", Label: fmt.Sprintf("%d aborted", c[fleet.DevAborted])},
		{N: fl, Class: "busy", Label: fmt.Sprintf("%d in flight", fl)},
	}
}

// progressLabel is "3 of 10 succeeded".
func progressLabel(d fleet.Deployment) string {
	return fmt.Sprintf("%d of %d succeeded", d.Counts[fleet.DevSucceeded], d.Total)
}

// counts lists the statuses with devices, in rollout order.
func counts(d fleet.Deployment) []statusCount {
	var out []statusCount
	for _, st := range DeviceStatuses {
		if n := d.Counts[st]; n > 0 {
			out = append(out, statusCount{st, n})
		}
	}
	return out
}

type statusCount struct {
	Status string
	N      int
}

func (c statusCount) Label() string {
	return strconv.Itoa(c.N) + " " + strings.ReplaceAll(c.Status, "_", " ")
}

func phaseSummary(d fleet.Deployment) string {
	ps := phasesOf(d)
	if d.State == fleet.DeploymentCompleted {
		return fmt.Sprintf("all %d phases done", len(ps))
	}
	if len(ps) == 1 {
		return "one phase (100%)"
	}
	return fmt.Sprintf("phase %d of %d", d.Phase+1, len(ps))
}

func phaseText(p Phase) string {
	s := fmt.Sprintf("%d: up to %d%%", p.N, p.Percent)
	switch p.State {
	case "done":
		s += " · done"
	case "current":
		s += fmt.Sprintf(" · %d of %d finished", p.Done, p.Members)
	default:
		s += " · waiting"
	}
	return s
}

func phaseClass(p Phase) string { return p.State }

func percentOf(dv fleet.DeploymentDevice) int {
	if dv.Percent == nil {
		return 0
	}
	return *dv.Percent
}

func showPercent(dv fleet.DeploymentDevice) bool {
	return dv.Percent != nil && (dv.Status == fleet.DevDownloading || dv.Status == fleet.DevSent)
}

func targets(d fleet.Deployment) string {
	var parts []string
	if n := len(d.Spec.DeviceIDs); n > 0 {
		if n <= 3 {
			parts = append(parts, strings.Join(d.Spec.DeviceIDs, ", "))
		} else {
			parts = append(parts, fmt.Sprintf("%d devices by id", n))
		}
	}
	if d.Spec.Tag != "" {
		parts = append(parts, "tag "+d.Spec.Tag)
	}
	return strings.Join(parts, " and ")
}

func phasesText(d fleet.Deployment) string {
	ps := phasesOf(d)
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p) + "%"
	}
	return strings.Join(s, ", ")
}

func settings(d fleet.Deployment) string {
	sp := d.Spec
	s := fmt.Sprintf("phases %s · at most %d in flight · threshold %d%% · %d attempts · commit within %ds",
		phasesText(d), sp.MaxInFlight, max(sp.FailureThreshold, 0), sp.MaxAttempts, sp.CommitTimeout)
	if sp.NotBefore.After(d.CreatedAt) {
		s += " · not before " + app.Stamp(sp.NotBefore)
	}
	return s
}

// Operable reports whether the page's user may pause, resume or abort.
func (m Model) Operable() bool {
	return m.Page.Can(fleet.RoleOperator) && !Finished(m.Deployment)
}

func canPause(d fleet.Deployment) bool {
	return d.State == fleet.DeploymentRunning || d.State == fleet.DeploymentScheduled
}

func canResume(d fleet.Deployment) bool { return d.State == fleet.DeploymentPaused }

func artifactLabel(a fleet.Artifact) string { return a.Name + " " + a.Version }

func artifactValue(a fleet.Artifact) string { return a.Name + "@" + a.Version }

func idText(id int64) string { return strconv.FormatInt(id, 10) }

func attemptsText(dv fleet.DeploymentDevice, d fleet.Deployment) string {
	if d.Spec.MaxAttempts > 0 {
		return fmt.Sprintf("%d/%d", dv.Attempts, d.Spec.MaxAttempts)
	}
	return strconv.Itoa(dv.Attempts)
}

func listURL(state string) string {
	if state == "" {
		return "/deployments"
	}
	return "/deployments?state=" + state
}

// liveTrigger is what makes the page fetch its live part again: its own
// deployment's events and devices' update reports.
func liveTrigger(id int64) string {
	return "bosun:deployment:" + idText(id) + " from:body, bosun:ota from:body"
}
