package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// artifactsCommand is `bosun artifacts`: upload, list, show and delete OTA
// artifacts. Its line in the command table (cli.go) refers to it.
var artifactsCommand = command{name: "artifacts",
	synopsis: "[list] [NAME] [--json]\nupload NAME VERSION FILE [--json]\nshow ID [--json]\ndelete ID",
	summary:  "upload, list, show or delete OTA artifacts",
	args: []arg{
		{"list NAME", "list the artifacts (the default), of one NAME only if given, newest version first"},
		{"upload NAME VERSION FILE", "upload FILE (a bundle, tar.gz) as VERSION (semantic version, e.g. 1.2.0) of the artifact NAME"},
		{"show ID", "show one artifact, as `bosun artifacts` lists it"},
		{"delete ID", "delete an artifact (its bytes go with the last artifact naming them)"},
	},
	run: cmdArtifacts,
}

func cmdArtifacts(ctx context.Context, a *app, args []string) error {
	fs := a.flags("artifacts")
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
		art, err := c.UploadArtifact(ctx, pos[1], pos[2], f, size)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(art)
		}
		fmt.Fprintf(a.stdout, "uploaded %s %s as artifact %d: %d bytes, sha256 %s\n", art.Name, art.Version, art.ID, art.Length, art.SHA256)
		return nil
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
