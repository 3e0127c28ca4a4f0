package deployments

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

func members(n int, status string) []fleet.DeploymentDevice {
	out := make([]fleet.DeploymentDevice, n)
	for i := range out {
		out[i] = fleet.DeploymentDevice{DeviceID: fmt.Sprintf("d-%05d", i), Status: status}
	}
	return out
}

// TestDeviceRowsBound: the table shows at most MaxDeviceRows devices and
// says how many it leaves out; at the bound it says nothing.
func TestDeviceRowsBound(t *testing.T) {
	d := fleet.Deployment{ID: 7, Name: "app", Version: "1.0.0", State: fleet.DeploymentRunning,
		Spec: fleet.DeploymentSpec{Phases: []int{100}}}
	for _, c := range []struct {
		n, shown int
		note     bool
	}{{MaxDeviceRows - 1, MaxDeviceRows - 1, false}, {MaxDeviceRows, MaxDeviceRows, false}, {MaxDeviceRows + 1, MaxDeviceRows, true}} {
		m := newModel(app.Page{}, d, members(c.n, fleet.DevPending), "")
		if m.Shown != c.shown || len(m.Devices) != c.shown || m.Matching != c.n {
			t.Fatalf("%d devices: shown %d, matching %d; want %d, %d", c.n, m.Shown, m.Matching, c.shown, c.n)
		}
		var buf bytes.Buffer
		if err := Show(m).Render(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
		if rows := strings.Count(buf.String(), "data-member="); rows != c.shown {
			t.Fatalf("%d devices: %d rows rendered, want %d", c.n, rows, c.shown)
		}
		want := fmt.Sprintf("Showing %d of %d devices", MaxDeviceRows, c.n)
		if got := strings.Contains(buf.String(), want); got != c.note {
			t.Fatalf("%d devices: note %q shown %v, want %v", c.n, want, got, c.note)
		}
	}
	// The status filter applies before the bound.
	devs := append(members(MaxDeviceRows+10, fleet.DevSucceeded), fleet.DeploymentDevice{DeviceID: "late", Status: fleet.DevFailed})
	m := newModel(app.Page{}, d, devs, fleet.DevFailed)
	if m.Shown != 1 || m.Devices[0].DeviceID != "late" {
		t.Fatalf("filtered: %+v", m.Devices)
	}
}

// TestPhasesAndThreshold: each phase's state and the current phase's
// failures against the threshold.
func TestPhasesAndThreshold(t *testing.T) {
	d := fleet.Deployment{State: fleet.DeploymentPaused, Phase: 1, Spec: fleet.DeploymentSpec{Phases: []int{10, 50, 100}, FailureThreshold: 20}}
	devs := []fleet.DeploymentDevice{
		{DeviceID: "a", Phase: 0, Status: fleet.DevSucceeded},
		{DeviceID: "b", Phase: 1, Status: fleet.DevFailed},
		{DeviceID: "c", Phase: 1, Status: fleet.DevRolledBack},
		{DeviceID: "d", Phase: 1, Status: fleet.DevSucceeded},
		{DeviceID: "e", Phase: 1, Status: fleet.DevDownloading},
		{DeviceID: "f", Phase: 2, Status: fleet.DevPending},
	}
	m := newModel(app.Page{}, d, devs, "")
	var got []string
	for _, p := range m.Phases {
		got = append(got, phaseText(p))
	}
	if want := "1: up to 10% · done|2: up to 50% · 3 of 4 finished|3: up to 100% · waiting"; strings.Join(got, "|") != want {
		t.Fatalf("phases %q, want %q", strings.Join(got, "|"), want)
	}
	if m.Threshold != (Threshold{Percent: 20, Failed: 2, Members: 4}) || !m.Threshold.Exceeded() {
		t.Fatalf("threshold %+v", m.Threshold)
	}
	if (Threshold{Percent: 50, Failed: 2, Members: 4}).Exceeded() {
		t.Fatal("2 of 4 at 50% is not over the threshold")
	}
}

// TestFormSpec: the form's fields become a spec, or a message saying what
// is wrong.
func TestFormSpec(t *testing.T) {
	at := time.Date(2026, 12, 24, 18, 30, 0, 0, time.UTC)
	ok := Form{Artifact: "app@1.2.3", Devices: "pi-1, pi-2\npi-3  pi-4", Tag: "lab", Phases: "10, 100", MaxInFlight: "5",
		FailureThreshold: "0", MaxAttempts: "2", CommitTimeout: "5m", NotBefore: "2026-12-24T18:30"}
	s, msg := ok.Spec()
	if msg != "" {
		t.Fatal(msg)
	}
	want := fleet.DeploymentSpec{Name: "app", Version: "1.2.3", DeviceIDs: []string{"pi-1", "pi-2", "pi-3", "pi-4"}, Tag: "lab",
		Phases: []int{10, 100}, MaxInFlight: 5, FailureThreshold: -1, MaxAttempts: 2, CommitTimeout: 300, NotBefore: at}
	if fmt.Sprintf("%+v", s) != fmt.Sprintf("%+v", want) {
		t.Fatalf("spec\n%+v, want\n%+v", s, want)
	}
	if s, msg := (Form{Artifact: "app@1.2.3", Tag: "lab"}).Spec(); msg != "" || s.FailureThreshold != 0 || s.Phases != nil || s.CommitTimeout != 0 {
		t.Fatalf("defaults: %+v %q", s, msg)
	}
	for _, c := range []struct {
		name string
		f    Form
		want string
	}{
		{"no artifact", Form{Tag: "x"}, "Choose the artifact"},
		{"no version", Form{Artifact: "app@", Tag: "x"}, "Choose the artifact"},
		{"no target", Form{Artifact: "a@1.0.0"}, "Name the devices"},
		{"phases", Form{Artifact: "a@1.0.0", Tag: "x", Phases: "ten"}, "Phases are cumulative percents"},
		{"in flight", Form{Artifact: "a@1.0.0", Tag: "x", MaxInFlight: "-1"}, "Max in flight must be at least 1"},
		{"attempts", Form{Artifact: "a@1.0.0", Tag: "x", MaxAttempts: "two"}, "Max attempts must be a whole number"},
		{"threshold", Form{Artifact: "a@1.0.0", Tag: "x", FailureThreshold: "-1"}, "Failure threshold is a percent"},
		{"timeout", Form{Artifact: "a@1.0.0", Tag: "x", CommitTimeout: "1.5s"}, "Commit timeout is seconds"},
		{"timeout 0", Form{Artifact: "a@1.0.0", Tag: "x", CommitTimeout: "0"}, "Commit timeout must be at least 1s"},
		{"not before", Form{Artifact: "a@1.0.0", Tag: "x", NotBefore: "24/12/2026"}, "Not before is a UTC time"},
	} {
		if _, msg := c.f.Spec(); !strings.Contains(msg, c.want) {
			t.Errorf("%s: %q, want %q", c.name, msg, c.want)
		}
	}
}
