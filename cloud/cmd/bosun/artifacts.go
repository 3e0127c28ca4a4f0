package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/client"
	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/pkg/release"
)

// uploadArtifact uploads f as name version. With a release directory the
// bundle is signed there first (locally: the targets key never leaves this
// machine) and the new targets.json is published after the bytes are up,
// so devices never see a signed target whose bytes the cloud lacks.
func (a *app) uploadArtifact(ctx context.Context, c *client.Client, name, version string, f *os.File, size int64, releaseDir string, expires time.Duration) error {
	if releaseDir != "" {
		if _, err := os.Stat(filepath.Join(releaseDir, "1.root.json")); err != nil {
			return fmt.Errorf("--release %s is not a release repository (no 1.root.json): make one with bosun release init %s", releaseDir, releaseDir)
		}
		if _, err := release.SignTarget(releaseDir, name, version, f.Name(), expires); err != nil {
			return fmt.Errorf("signing %s %s: %w", name, version, err)
		}
	}
	art, err := c.UploadArtifact(ctx, name, version, f, size)
	if err != nil {
		return err
	}
	out := struct {
		wire.Artifact
		Release *wire.Release `json:"release,omitempty"`
	}{Artifact: art}
	if releaseDir != "" {
		tb, err := os.ReadFile(filepath.Join(releaseDir, "targets.json"))
		if err != nil {
			return err
		}
		rel, err := c.UploadRelease(ctx, wire.ReleaseUpload{Targets: tb})
		if err != nil {
			return fmt.Errorf("uploaded %s %s as artifact %d, but publishing its signature failed (run bosun release publish %s): %w", name, version, art.ID, releaseDir, err)
		}
		out.Release = &rel
	}
	if a.json {
		return a.printJSON(out)
	}
	fmt.Fprintf(a.stdout, "uploaded %s %s as artifact %d: %d bytes, sha256 %s\n", art.Name, art.Version, art.ID, art.Length, art.SHA256)
	if out.Release != nil {
		fmt.Fprintf(a.stdout, "signed in %s and published: targets version %d\n", releaseDir, out.Release.TargetsVersion)
	} else {
		fmt.Fprintf(a.stdout, "not signed: devices refuse it until it is (bosun release sign DIR %s %s FILE, then bosun release publish DIR)\n", name, version)
	}
	return nil
}

// artifactsCommand is `bosun artifacts`: upload, list, show and delete OTA
// artifacts. Its line in the command table (cli.go) refers to it.
var artifactsCommand = command{name: "artifacts",
	synopsis: "[list] [NAME] [--json]\nupload NAME VERSION FILE [--release DIR] [--json]\nshow ID [--json]\ndelete ID",
	summary:  "upload, list, show or delete OTA artifacts",
	args: []arg{
		{"list NAME", "list the artifacts (the default), of one NAME only if given, newest version first"},
		{"upload NAME VERSION FILE", "upload FILE (a bundle, tar.gz) as VERSION (semantic version, e.g. 1.2.0) of the artifact NAME; with --release DIR, first sign it into DIR/targets.json and afterwards publish that (devices install only what is signed)"},
		{"show ID", "show one artifact, as `bosun artifacts` lists it"},
		{"delete ID", "delete an artifact (its bytes go with the last artifact naming them)"},
	},
	run: cmdArtifacts,
}

func cmdArtifacts(ctx context.Context, a *app, args []string) error {
	fs := a.flags("artifacts")
	releaseDir := fs.String("release", a.getenv("BOSUN_RELEASE_DIR"), "upload: the release repository (bosun release init) to sign the bundle in before the upload and publish after it (BOSUN_RELEASE_DIR)")
	expires := fs.Duration("expires", release.DefaultTargetsExpiry, "upload --release: how long the signed targets.json stays valid")
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
	case op == "list" && len(pos) <= 2:
	case op == "upload" && len(pos) == 4:
	case (op == "show" || op == "delete") && len(pos) == 2:
		if id, err = strconv.ParseInt(pos[1], 10, 64); err != nil || id <= 0 {
			return usagef("artifact ID %q: want a number", pos[1])
		}
	default:
		return usagef("want list [NAME] (or nothing), upload NAME VERSION FILE, show ID or delete ID")
	}
	var f *os.File
	var size int64
	if op == "upload" {
		if f, err = os.Open(pos[3]); err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return usagef("FILE %s is not a regular file", pos[3])
		}
		size = fi.Size()
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	switch op {
	case "upload":
		return a.uploadArtifact(ctx, c, pos[1], pos[2], f, size, *releaseDir, *expires)
	case "show":
		art, err := c.Artifact(ctx, id)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(art)
		}
		a.artifactDetail(art)
		return nil
	case "delete":
		if err := c.DeleteArtifact(ctx, id); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(a.stdout, "deleted artifact %d\n", id)
		}
		return nil
	}
	name := ""
	if len(pos) == 2 {
		name = pos[1]
	}
	list, err := c.ListArtifacts(ctx, name)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(a.stdout, "no artifacts")
		return nil
	}
	tw := a.table("ID\tNAME\tVERSION\tBYTES\tSHA256\tUPLOADED")
	for _, art := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s by %s\n", art.ID, art.Name, art.Version, art.Length, art.SHA256[:12], a.ago(art.UploadedAt), art.UploadedBy)
	}
	tw.Flush()
	return nil
}

func (a *app) artifactDetail(art wire.Artifact) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%d\n", art.ID)
	fmt.Fprintf(tw, "name\t%s\n", art.Name)
	fmt.Fprintf(tw, "version\t%s\n", art.Version)
	fmt.Fprintf(tw, "bytes\t%d\n", art.Length)
	fmt.Fprintf(tw, "sha256\t%s\n", art.SHA256)
	fmt.Fprintf(tw, "uploaded\t%s by %s\n", a.ago(art.UploadedAt), art.UploadedBy)
	meta := "none"
	if len(art.Metadata) > 0 {
		meta = fmt.Sprintf("%d bytes", len(art.Metadata))
	}
	fmt.Fprintf(tw, "metadata\t%s\n", meta)
	tw.Flush()
}
