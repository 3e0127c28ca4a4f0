package fleet

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/release"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file is the cloud's side of release signing (pkg/release,
// docs/security.md): every organisation has a release repository, TUF
// metadata whose root and targets an operator signs offline (`bosun release`)
// and uploads here, and whose snapshot and timestamp this cloud signs with
// its online keys (Options.Release) when it accepts an upload, and again
// before they expire (the refresh loop). Devices fetch the metadata
// through their signed session with ota.metadata and refuse any bundle it
// does not name with the right length and hashes. The cloud never holds
// the root or targets keys, so it cannot make a device install anything.

// MaxSessionMetadata bounds one metadata file a device fetches through
// its session (ota.metadata): the file travels base64-encoded inside a
// signed envelope of at most 1 MiB. An upload whose targets.json or
// root.json is larger is refused.
const MaxSessionMetadata = 512 << 10

// DefaultReleaseRefresh is how often the cloud re-signs snapshots and
// timestamps that are getting old, unless Options.ReleaseRefresh says
// otherwise. It is far below half the timestamp's one-day lifetime.
const DefaultReleaseRefresh = 10 * time.Minute

// errNoRelease answers release requests when the cloud has no online keys
// (no data directory).
var errNoRelease = &PublicError{Kind: ErrConflict, Msg: "this cloud signs no release metadata: start bosun-cloud serve with --data-dir (BOSUN_DATA_DIR)"}

// ReleaseInfo is an organisation's release repository as the API shows it.
type ReleaseInfo struct {
	OrgID int64
	// SnapshotKey and TimestampKey are this cloud's online public keys
	// (PEM), for `bosun release init` and rotations.
	SnapshotKey, TimestampKey string
	release.RepoInfo
	UpdatedAt time.Time // zero when nothing was uploaded
}

// ReleaseUpload is what an operator uploads: root.json files not yet
// uploaded, oldest first (each must be the next version), and/or a new
// targets.json. Either may be empty.
type ReleaseUpload struct {
	Roots   [][]byte
	Targets []byte
}

func (s *Service) releaseInfo(org int64, r store.ReleaseRepo) (ReleaseInfo, error) {
	out := ReleaseInfo{OrgID: org, UpdatedAt: r.UpdatedAt}
	k := s.opts.Release.Keys()
	var err error
	if out.SnapshotKey, err = publicPEM(k.Snapshot); err != nil {
		return ReleaseInfo{}, err
	}
	if out.TimestampKey, err = publicPEM(k.Timestamp); err != nil {
		return ReleaseInfo{}, err
	}
	if out.RepoInfo, err = toRepo(r).Info(); err != nil {
		return ReleaseInfo{}, fmt.Errorf("stored release metadata of org %d: %w", org, err)
	}
	if out.Targets == nil {
		out.Targets = []release.TargetInfo{}
	}
	return out, nil
}

func publicPEM(k crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

func toRepo(r store.ReleaseRepo) release.Repo {
	return release.Repo{Root: r.Root, Targets: r.Targets, Snapshot: r.Snapshot, Timestamp: r.Timestamp}
}

// Release returns the release repository of the actor's organisation
// (every role may read it; it holds no secret).
func (s *Service) Release(ctx context.Context, a Actor) (ReleaseInfo, error) {
	if !a.Role.Valid() || a.OrgID == 0 {
		return ReleaseInfo{}, ErrForbidden
	}
	if s.opts.Release == nil {
		return ReleaseInfo{}, errNoRelease
	}
	r, err := s.st.ReleaseRepo(ctx, a.OrgID)
	if errors.Is(err, store.ErrNotFound) {
		r = store.ReleaseRepo{}
	} else if err != nil {
		return ReleaseInfo{}, err
	}
	return s.releaseInfo(a.OrgID, r)
}

// UploadRelease accepts signed metadata into the actor's organisation's
// release repository: operators and up may upload targets, a root (the
// first one, or a rotation) needs an admin. Each root must be the next
// version signed by the threshold of the trusted root's keys and its own,
// naming this cloud's online keys; targets must be signed by the root's
// targets keys with a higher version. What is refused changes nothing
// (pkg/release.Online.Accept); what is accepted is visible to devices at
// once, with a new snapshot and timestamp.
func (s *Service) UploadRelease(ctx context.Context, a Actor, up ReleaseUpload) (ReleaseInfo, error) {
	org := a.OrgID
	info, err := s.uploadRelease(ctx, a, org, up)
	detail := map[string]any{"roots": len(up.Roots), "targets_bytes": len(up.Targets)}
	if err != nil {
		detail["error"] = s.auditError("release.upload", "", err)
		s.audit(ctx, org, a, "release.upload", "", "error", detail)
		return ReleaseInfo{}, err
	}
	detail["root_version"], detail["targets_version"] = info.RootVersion, info.TargetsVersion
	s.audit(ctx, org, a, "release.upload", "", "ok", detail)
	return info, nil
}

func (s *Service) uploadRelease(ctx context.Context, a Actor, org int64, up ReleaseUpload) (ReleaseInfo, error) {
	if !a.operates(org) || org == 0 {
		return ReleaseInfo{}, fmt.Errorf("%w: role %s may not upload release metadata", ErrForbidden, a.Role)
	}
	if len(up.Roots) > 0 && !a.administers(org) {
		return ReleaseInfo{}, fmt.Errorf("%w: only an admin may upload a root.json (it decides which keys devices trust)", ErrForbidden)
	}
	if s.opts.Release == nil {
		return ReleaseInfo{}, errNoRelease
	}
	if len(up.Roots) == 0 && len(up.Targets) == 0 {
		return ReleaseInfo{}, invalidf("nothing to upload: give a root.json, a targets.json or both")
	}
	if len(up.Roots) > 32 {
		return ReleaseInfo{}, invalidf("at most 32 root.json files at once")
	}
	for i, b := range append(slices.Clone(up.Roots), up.Targets) {
		if len(b) > MaxSessionMetadata {
			what := "targets.json"
			if i < len(up.Roots) {
				what = "root.json"
			}
			return ReleaseInfo{}, invalidf("%s is %d bytes; devices fetch metadata through their session, so the limit is %d", what, len(b), MaxSessionMetadata)
		}
	}
	next, err := s.st.UpdateRelease(ctx, org, func(cur store.ReleaseRepo) (store.ReleaseRepo, bool, error) {
		repo := toRepo(cur)
		if len(repo.Root) == 0 && len(up.Roots) == 0 {
			return cur, false, conflictf("this organisation has no root.json yet: upload the one `bosun release init` made first (bosun release publish DIR)")
		}
		// Roots one by one, each the next version; the targets go with the
		// last one (a first root needs them: a repository without targets
		// is not one).
		for i, root := range up.Roots {
			var targets []byte
			if i == len(up.Roots)-1 {
				targets = up.Targets
			}
			var err error
			if repo, err = s.opts.Release.Accept(repo, root, targets); err != nil {
				what := fmt.Sprintf("root.json %d of %d", i+1, len(up.Roots))
				if targets != nil {
					what += " (with targets.json)"
				}
				return cur, false, releaseRefusal(what, err)
			}
		}
		if len(up.Roots) == 0 {
			var err error
			if repo, err = s.opts.Release.Accept(repo, nil, up.Targets); err != nil {
				return cur, false, releaseRefusal("targets.json", err)
			}
		}
		in, err := repo.Info()
		if err != nil {
			return cur, false, err
		}
		return store.ReleaseRepo{Root: repo.Root, RootVersion: in.RootVersion, Targets: repo.Targets,
			Snapshot: repo.Snapshot, Timestamp: repo.Timestamp}, true, nil
	})
	if err != nil {
		return ReleaseInfo{}, err
	}
	return s.releaseInfo(org, next)
}

// releaseRefusal makes a refusal of pkg/release public: its text says
// which rule the metadata broke, and holds nothing secret.
func releaseRefusal(what string, err error) error {
	for _, e := range []error{release.ErrUntrusted, release.ErrRollback, release.ErrExpired, release.ErrInvalid, release.ErrTampered} {
		if errors.Is(err, e) {
			return &PublicError{Kind: ErrInvalid, Msg: what + " refused: " + err.Error()}
		}
	}
	return err
}

// SignedTarget returns the target name@version as the organisation's
// release repository signs it, and checks that the artifact's bytes are
// the signed ones. Deployments refuse an artifact it refuses: devices
// would refuse it too.
func (s *Service) SignedTarget(ctx context.Context, art Artifact) (release.TargetInfo, error) {
	ref := art.Name + " " + art.Version
	r, err := s.st.ReleaseRepo(ctx, art.OrgID)
	if errors.Is(err, store.ErrNotFound) || err == nil && len(r.Targets) == 0 {
		return release.TargetInfo{}, conflictf("%s is not signed: this organisation has no release metadata yet (bosun release init, then bosun artifacts upload --release DIR)", ref)
	}
	if err != nil {
		return release.TargetInfo{}, err
	}
	list, err := release.ListTargets(r.Targets)
	if err != nil {
		return release.TargetInfo{}, err
	}
	path := release.TargetPath(art.Name, art.Version)
	for _, t := range list {
		if t.Path != path {
			continue
		}
		if t.Length != art.Length || !bytes.Equal(t.Hashes["sha256"], art.SHA256) {
			return release.TargetInfo{}, conflictf("%s is signed with other bytes (%d bytes) than the ones uploaded (%d bytes): devices would refuse it; upload the bundle that was signed", ref, t.Length, art.Length)
		}
		return t, nil
	}
	return release.TargetInfo{}, conflictf("%s is not in this organisation's signed targets.json: sign it with bosun release sign (or bosun artifacts upload --release DIR) and upload the metadata", ref)
}

// OTAMetadataParams are the params of ota.metadata: one of the names a
// TUF client fetches (root.json, N.root.json, targets.json, snapshot.json,
// timestamp.json).
type OTAMetadataParams struct {
	File string `json:"file"`
}

// OTAMetadataResult answers ota.metadata with the file's exact bytes
// (base64 in JSON).
type OTAMetadataResult struct {
	File string `json:"file"`
	Data []byte `json:"data"`
}

var versionedRoot = regexp.MustCompile(`^([1-9][0-9]{0,17})\.root\.json$`)

// otaMetadata serves ota.metadata for the calling device, from its
// organisation's release repository. A file the repository does not have
// is CodeNotFound (the device's TUF client learns there is no newer root
// that way).
func (s *Service) otaMetadata(ctx context.Context, p OTAMetadataParams) (OTAMetadataResult, error) {
	dev, ok := DeviceFromContext(ctx)
	if !ok {
		return OTAMetadataResult{}, notAccepted
	}
	notFound := jsonrpc.NewError(rpcproto.CodeNotFound, "no such release metadata file", map[string]string{"file": p.File})
	var version int64
	switch p.File {
	case "root.json", "targets.json", "snapshot.json", "timestamp.json":
	default:
		m := versionedRoot.FindStringSubmatch(p.File)
		if m == nil {
			return OTAMetadataResult{}, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "invalid params: file must be root.json, N.root.json, targets.json, snapshot.json or timestamp.json", nil)
		}
		version, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if version > 0 {
		b, err := s.st.ReleaseRoot(ctx, dev.OrgID, version)
		if errors.Is(err, store.ErrNotFound) {
			return OTAMetadataResult{}, notFound
		}
		return OTAMetadataResult{File: p.File, Data: b}, err
	}
	r, err := s.st.ReleaseRepo(ctx, dev.OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return OTAMetadataResult{}, notFound
	}
	if err != nil {
		return OTAMetadataResult{}, err
	}
	b := map[string][]byte{"root.json": r.Root, "targets.json": r.Targets, "snapshot.json": r.Snapshot, "timestamp.json": r.Timestamp}[p.File]
	if len(b) == 0 {
		return OTAMetadataResult{}, notFound
	}
	return OTAMetadataResult{File: p.File, Data: b}, nil
}

// refreshReleases re-signs the snapshots and timestamps of every
// organisation that need it (release.Online.Refresh). Several replicas
// may run it; the store's per-organisation lock makes them take turns.
func (s *Service) refreshReleases(ctx context.Context) {
	if s.opts.Release == nil {
		return
	}
	orgs, err := s.st.ReleaseOrgs(ctx)
	if err != nil {
		s.log.Warn("release refresh", "err", err)
		return
	}
	for _, org := range orgs {
		_, err := s.st.UpdateRelease(ctx, org, func(cur store.ReleaseRepo) (store.ReleaseRepo, bool, error) {
			next, changed, err := s.opts.Release.Refresh(toRepo(cur))
			if err != nil || !changed {
				return cur, false, err
			}
			return store.ReleaseRepo{Root: next.Root, RootVersion: cur.RootVersion, Targets: next.Targets,
				Snapshot: next.Snapshot, Timestamp: next.Timestamp}, true, nil
		})
		if err != nil {
			s.log.Error("release refresh: devices will refuse this organisation's updates once its timestamp expires", "org", org, "err", err)
		}
	}
}

// releaseLoop runs refreshReleases at start and every ReleaseRefresh.
func (s *Service) releaseLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.ReleaseRefresh)
	defer t.Stop()
	for {
		s.refreshReleases(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
