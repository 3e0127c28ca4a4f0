package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// The parts of `bosun release` that talk to the cloud: init without key
// files (the cloud's online public keys are asked for), publish and status.

// releaseInitFromCloud asks the cloud for its online public keys and makes
// the repository with them.
func releaseInitFromCloud(ctx context.Context, a *app, dir string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	rel, err := c.Release(ctx)
	if err != nil {
		return fmt.Errorf("asking the cloud for its online release keys: %w", err)
	}
	tmp, err := os.MkdirTemp("", "bosun-release-keys-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	snap, ts := filepath.Join(tmp, "snapshot.pub"), filepath.Join(tmp, "timestamp.pub")
	if err := os.WriteFile(snap, []byte(rel.SnapshotKey), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(ts, []byte(rel.TimestampKey), 0o600); err != nil {
		return err
	}
	return releaseInit(a, dir, snap, ts)
}

// signedVersion reads the "signed.version" of a metadata file.
func signedVersion(b []byte) (int64, error) {
	var m struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, err
	}
	return m.Signed.Version, nil
}

// releasePublish uploads what the cloud lacks of dir: every N.root.json
// after the cloud's root version, in order, and targets.json when its
// version is newer than the cloud's.
func releasePublish(ctx context.Context, a *app, dir string) error {
	targetsPath := filepath.Join(dir, "targets.json")
	if _, err := os.Stat(filepath.Join(dir, "1.root.json")); err != nil {
		return fmt.Errorf("%s is not a release repository (no 1.root.json): make one with bosun release init %s", dir, dir)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	cur, err := c.Release(ctx)
	if err != nil {
		return err
	}
	var up wire.ReleaseUpload
	for v := cur.RootVersion + 1; ; v++ {
		b, err := os.ReadFile(filepath.Join(dir, strconv.FormatInt(v, 10)+".root.json"))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		up.Roots = append(up.Roots, b)
	}
	tb, err := os.ReadFile(targetsPath)
	if err != nil {
		return err
	}
	tv, err := signedVersion(tb)
	if err != nil {
		return fmt.Errorf("%s: %w", targetsPath, err)
	}
	if tv > cur.TargetsVersion {
		up.Targets = tb
	}
	if len(up.Roots) == 0 && len(up.Targets) == 0 {
		if cur.TargetsVersion > tv {
			return fmt.Errorf("the cloud has targets.json version %d, newer than %s (version %d): sign in the repository that made it", cur.TargetsVersion, targetsPath, tv)
		}
		if a.json {
			return a.printJSON(cur)
		}
		fmt.Fprintf(a.stdout, "the cloud is up to date: root version %d, targets version %d\n", cur.RootVersion, cur.TargetsVersion)
		return nil
	}
	rel, err := c.UploadRelease(ctx, up)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(rel)
	}
	fmt.Fprintf(a.stdout, "published %d root.json and %s: the cloud now has root version %d, targets version %d (%d targets)\n",
		len(up.Roots), map[bool]string{true: "targets.json", false: "no targets.json"}[len(up.Targets) > 0],
		rel.RootVersion, rel.TargetsVersion, len(rel.Targets))
	return nil
}

// releaseStatus shows the cloud's release repository.
func releaseStatus(ctx context.Context, a *app) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	rel, err := c.Release(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(rel)
	}
	a.releaseDetail(rel)
	return nil
}

func (a *app) releaseDetail(rel wire.Release) {
	if rel.RootVersion == 0 {
		fmt.Fprintln(a.stdout, "no release metadata yet: bosun release init DIR, then bosun release publish DIR")
	}
	until := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return "valid until " + a.when(*t)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, r := range []struct {
		role string
		v    int64
		exp  *time.Time
	}{{"root", rel.RootVersion, rel.RootExpires}, {"targets", rel.TargetsVersion, rel.TargetsExpires},
		{"snapshot", rel.SnapshotVersion, rel.SnapshotExpires}, {"timestamp", rel.TimestampVersion, rel.TimestampExpires}} {
		if r.v == 0 {
			fmt.Fprintf(tw, "%s\t-\n", r.role)
			continue
		}
		fmt.Fprintf(tw, "%s\tversion %d\t%s\n", r.role, r.v, until(r.exp))
	}
	tw.Flush()
	if len(rel.Targets) > 0 {
		fmt.Fprintln(a.stdout, "\nsigned targets:")
		tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tBYTES\tSHA256")
		for _, t := range rel.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.Name, t.Version, t.Length, t.SHA256)
		}
		tw.Flush()
	}
}
