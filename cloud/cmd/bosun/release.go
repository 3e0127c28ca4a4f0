package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bosunhq/bosun/pkg/release"
)

// releaseCommand is `bosun release`: the operator's side of release
// signing (pkg/release). The root and targets keys it makes stay on this
// machine: init, sign, remove and rotate work on local files (init asks
// the cloud for its public keys unless given them), publish uploads the
// signed metadata, status shows what the cloud has.
var releaseCommand = command{
	name: "release",
	synopsis: "init DIR [--snapshot-key FILE --timestamp-key FILE] [--json]\n" +
		"publish DIR [--json]\n" +
		"status [--json]\n" +
		"sign DIR NAME VERSION BUNDLE [--expires 2160h] [--json]\n" +
		"remove DIR NAME VERSION [--expires 2160h] [--json]\n" +
		"rotate DIR [--new-root-key] [--new-targets-key] [--snapshot-key FILE --timestamp-key FILE] [--json]",
	summary: "make release keys, sign bundles for devices, upload the signed metadata, rotate keys",
	args: []arg{
		{"init DIR", "make a release repository in DIR: root and targets keys (DIR/keys, 0600, never overwritten), 1.root.json naming the cloud's online keys (asked from the cloud unless --snapshot-key and --timestamp-key are given), and an empty targets.json"},
		{"publish DIR", "upload to the cloud the root.json versions and the targets.json of DIR that it does not have yet (the first root needs an admin)"},
		{"status", "show the cloud's release metadata: versions, expiries, signed targets and its online public keys"},
		{"sign DIR NAME VERSION BUNDLE", "add the bundle file BUNDLE as artifact NAME (a-z0-9._-) at VERSION (semantic version, no v) to DIR/targets.json and sign it with the targets key"},
		{"remove DIR NAME VERSION", "take artifact NAME at VERSION out of DIR/targets.json and sign it: once uploaded, devices refuse that version"},
		{"rotate DIR", "write the next N.root.json of DIR, signed by the old and the new root keys: with new root or targets keys, new cloud keys, or (no flags) only a renewed expiry"},
	},
	run: cmdRelease,
}

func cmdRelease(ctx context.Context, a *app, args []string) error {
	fs := a.flags("release")
	snapshotKey := fs.String("snapshot-key", "", "init, rotate: the cloud's snapshot public key (PEM file, the cloud's snapshot.pub)")
	timestampKey := fs.String("timestamp-key", "", "init, rotate: the cloud's timestamp public key (PEM file, the cloud's timestamp.pub)")
	newRoot := fs.Bool("new-root-key", false, "rotate: replace the root key by a new one")
	newTargets := fs.Bool("new-targets-key", false, "rotate: replace the targets key by a new one and re-sign targets.json with it")
	expires := fs.Duration("expires", release.DefaultTargetsExpiry, "sign, remove: how long the signed targets.json stays valid; sign again before it ends")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want init, publish, status, sign, remove or rotate")
	}
	switch pos[0] {
	case "init":
		if len(pos) != 2 {
			return usagef("want init DIR")
		}
		if (*snapshotKey == "") != (*timestampKey == "") {
			return usagef("init takes --snapshot-key and --timestamp-key together (or neither: then the cloud is asked)")
		}
		if *snapshotKey == "" {
			return releaseInitFromCloud(ctx, a, pos[1])
		}
		return releaseInit(a, pos[1], *snapshotKey, *timestampKey)
	case "publish":
		if len(pos) != 2 {
			return usagef("want publish DIR")
		}
		return releasePublish(ctx, a, pos[1])
	case "status":
		if len(pos) != 1 {
			return usagef("want status")
		}
		return releaseStatus(ctx, a)
	case "sign":
		if len(pos) != 5 {
			return usagef("want sign DIR NAME VERSION BUNDLE")
		}
		if *expires <= 0 {
			return usagef("--expires must be positive, e.g. 2160h")
		}
		return releaseSign(a, pos[1], pos[2], pos[3], pos[4], *expires)
	case "remove":
		if len(pos) != 4 {
			return usagef("want remove DIR NAME VERSION")
		}
		if *expires <= 0 {
			return usagef("--expires must be positive, e.g. 2160h")
		}
		return releaseRemove(a, pos[1], pos[2], pos[3], *expires)
	case "rotate":
		if len(pos) != 2 {
			return usagef("want rotate DIR")
		}
		if (*snapshotKey == "") != (*timestampKey == "") {
			return usagef("rotate takes --snapshot-key and --timestamp-key together")
		}
		return releaseRotate(a, pos[1], *newRoot, *newTargets, *snapshotKey, *timestampKey)
	default:
		return usagef("unknown release command %q: want init, publish, status, sign, remove or rotate", pos[0])
	}
}

func releaseInit(a *app, dir, snapshotFile, timestampFile string) error {
	snap, err := release.PublicKeyFile(snapshotFile)
	if err != nil {
		return fmt.Errorf("snapshot key: %w", err)
	}
	ts, err := release.PublicKeyFile(timestampFile)
	if err != nil {
		return fmt.Errorf("timestamp key: %w", err)
	}
	if err := release.InitRepo(dir, release.OnlineKeys{Snapshot: snap, Timestamp: ts}); err != nil {
		return err
	}
	res := struct {
		Dir     string `json:"dir"`
		Root    string `json:"root"`
		Targets string `json:"targets"`
		Keys    string `json:"keys"`
	}{dir, filepath.Join(dir, "1.root.json"), filepath.Join(dir, "targets.json"), filepath.Join(dir, "keys")}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "made a release repository in %s\n", dir)
	fmt.Fprintf(a.stdout, "  %s: the root and targets private keys; keep them offline and backed up\n", res.Keys)
	fmt.Fprintf(a.stdout, "  %s: install it on devices as their pinned release root (bosun-ota --release-root)\n", res.Root)
	fmt.Fprintf(a.stdout, "  %s: signed by `bosun release sign` or `bosun artifacts upload --release %s`\n", res.Targets, dir)
	fmt.Fprintf(a.stdout, "next: bosun release publish %s\n", dir)
	return nil
}

func releaseSign(a *app, dir, name, version, bundle string, expires time.Duration) error {
	b, err := release.SignTarget(dir, name, version, bundle, expires)
	if err != nil {
		return err
	}
	var meta struct {
		Signed struct {
			Version int64     `json:"version"`
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return err
	}
	targets, err := release.ListTargets(b)
	if err != nil {
		return err
	}
	var ti release.TargetInfo
	for _, t := range targets {
		if t.Path == release.TargetPath(name, version) {
			ti = t
		}
	}
	res := struct {
		Targets        string    `json:"targets"`
		TargetsVersion int64     `json:"targets_version"`
		Expires        time.Time `json:"expires"`
		Path           string    `json:"path"`
		Length         int64     `json:"length"`
		SHA256         string    `json:"sha256"`
	}{filepath.Join(dir, "targets.json"), meta.Signed.Version, meta.Signed.Expires, ti.Path, ti.Length, hex.EncodeToString(ti.Hashes["sha256"])}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "signed %s %s (%d bytes, sha256 %s)\n", name, version, res.Length, res.SHA256)
	fmt.Fprintf(a.stdout, "%s is now version %d, valid until %s\n", res.Targets, res.TargetsVersion, a.when(res.Expires))
	return nil
}

func releaseRotate(a *app, dir string, newRoot, newTargets bool, snapshotFile, timestampFile string) error {
	r := release.Rotation{NewRootKey: newRoot, NewTargetsKey: newTargets}
	if snapshotFile != "" {
		snap, err := release.PublicKeyFile(snapshotFile)
		if err != nil {
			return fmt.Errorf("snapshot key: %w", err)
		}
		ts, err := release.PublicKeyFile(timestampFile)
		if err != nil {
			return fmt.Errorf("timestamp key: %w", err)
		}
		r.Online = &release.OnlineKeys{Snapshot: snap, Timestamp: ts}
	}
	b, err := release.RotateRoot(dir, r)
	if err != nil {
		return err
	}
	var meta struct {
		Signed struct {
			Version int64     `json:"version"`
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return err
	}
	res := struct {
		Root    string    `json:"root"`
		Version int64     `json:"version"`
		Expires time.Time `json:"expires"`
		Targets string    `json:"targets,omitempty"`
	}{Root: filepath.Join(dir, strconv.FormatInt(meta.Signed.Version, 10)+".root.json"), Version: meta.Signed.Version, Expires: meta.Signed.Expires}
	if newTargets {
		res.Targets = filepath.Join(dir, "targets.json")
	}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "wrote %s (root version %d, valid until %s)\n", res.Root, res.Version, a.when(res.Expires))
	if res.Targets != "" {
		fmt.Fprintf(a.stdout, "re-signed %s with the new targets key; upload it with the new root\n", res.Targets)
	}
	fmt.Fprintln(a.stdout, "upload the new root to the cloud; devices keep their pinned root and follow the chain")
	return nil
}

func releaseRemove(a *app, dir, name, version string, expires time.Duration) error {
	b, err := release.RemoveTarget(dir, name, version, expires)
	if err != nil {
		return err
	}
	var meta struct {
		Signed struct {
			Version int64     `json:"version"`
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return err
	}
	res := struct {
		Targets        string    `json:"targets"`
		TargetsVersion int64     `json:"targets_version"`
		Expires        time.Time `json:"expires"`
		Removed        string    `json:"removed"`
	}{filepath.Join(dir, "targets.json"), meta.Signed.Version, meta.Signed.Expires, release.TargetPath(name, version)}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "removed %s %s\n", name, version)
	fmt.Fprintf(a.stdout, "%s is now version %d, valid until %s; upload it to the cloud\n", res.Targets, res.TargetsVersion, a.when(res.Expires))
	return nil
}
