package artifacts

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/ui"
)

// MaxGroups bounds the artifact names one page shows (each costs a
// query for its fleet breakdown); the page says how many more there are.
const MaxGroups = 100

// Model is the artifacts page.
type Model struct {
	Page    app.Page
	Groups  []Group
	More    int // names beyond MaxGroups, not shown
	MaxSize int64
	// ShowOrg names each group's organisation (a super user seeing all;
	// the fleet breakdown is then left out).
	ShowOrg bool
	Form    Form // the upload form's values after a refusal
	// Signed says, by artifact id, why a version is not signed in its
	// organisation's release (fleet.SignedTarget); no entry: signed.
	Signed map[int64]string
}

// Group is one artifact name: its versions, newest first, and what the
// fleet runs of it.
type Group struct {
	Name     string
	OrgID    int64
	Versions []fleet.Artifact
	Fleet    []fleet.VersionCount
}

// Form is what the upload form had typed.
type Form struct {
	Name, Version string
}

// ConfirmModel asks before a deletion.
type ConfirmModel struct {
	Page     app.Page
	Artifact fleet.Artifact
}

// FleetTotal is how many devices the breakdown counts.
func (g Group) FleetTotal() int {
	n := 0
	for _, v := range g.Fleet {
		n += v.Devices
	}
	return n
}

// segments draws one version's share of the fleet.
func segments(v fleet.VersionCount) []ui.Segment {
	class := "ok"
	if v.Version == "" {
		class = "muted"
	}
	return []ui.Segment{{N: v.Devices, Class: class, Label: devices(v.Devices) + " " + versionLabel(v.Version)}}
}

func versionLabel(v string) string {
	if v == "" {
		return "none (no update of this name succeeded)"
	}
	return v
}

func devices(n int) string {
	if n == 1 {
		return "1 device"
	}
	return strconv.Itoa(n) + " devices"
}

// Size formats a byte count for people.
func Size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

func shortHash(sha []byte) string {
	h := hex.EncodeToString(sha)
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func fullHash(sha []byte) string { return hex.EncodeToString(sha) }

func deletePath(a fleet.Artifact) string {
	return "/artifacts/" + strconv.FormatInt(a.ID, 10) + "/delete"
}

func deploymentsNew(a fleet.Artifact) string {
	return "/deployments/new?" + url.Values{"name": {a.Name}, "version": {a.Version}}.Encode()
}

func anchor(name string) string { return "artifact-" + name }

// share is n of total in whole percent, e.g. "(80%)".
func share(n, total int) string {
	if total <= 0 {
		return ""
	}
	return fmt.Sprintf("(%d%%)", (n*100+total/2)/total)
}
