package release

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bosunhq/bosun/pkg/keys"
)

// OnlineOptions configures an Online. nil means all defaults.
type OnlineOptions struct {
	// SnapshotExpiry is the lifetime of the snapshot.json Online signs.
	// Defaults to DefaultSnapshotExpiry (7 days).
	SnapshotExpiry time.Duration
	// TimestampExpiry is the lifetime of the timestamp.json Online signs.
	// Defaults to DefaultTimestampExpiry (1 day).
	TimestampExpiry time.Duration
	// Now is the clock. nil means time.Now.
	Now func() time.Time
}

// Online is the cloud's side of a release repository: it holds the online
// snapshot and timestamp keys, checks what an operator uploads, and signs
// the snapshot and timestamp that make it visible to devices. It never
// holds the root or targets keys, so it cannot make a device accept a
// target the operator did not sign.
//
// Online keeps no metadata itself: the caller passes an organisation's
// current Repo in and stores the Repo it gets back (one transaction), so
// one Online serves any number of organisations and is safe for concurrent
// use.
type Online struct {
	snapshot, timestamp *signer
	snapshotTTL, tsTTL  time.Duration
	now                 func() time.Time
}

// Repo is one organisation's current metadata, as the cloud stores it.
// The zero Repo is a repository that has received nothing yet.
type Repo struct {
	Root      []byte // the newest root.json
	Targets   []byte // targets.json
	Snapshot  []byte // snapshot.json
	Timestamp []byte // timestamp.json
}

// OpenOnline loads the snapshot and timestamp private keys from
// keyDir/snapshot.key and keyDir/timestamp.key, generating Ed25519 keys
// there (PKCS#8 PEM, 0600) when they do not exist; it never replaces one.
// It also writes their public keys to snapshot.pub and timestamp.pub, for
// the operator's `bosun release init`.
func OpenOnline(keyDir string, opts *OnlineOptions) (*Online, error) {
	o := &Online{snapshotTTL: DefaultSnapshotExpiry, tsTTL: DefaultTimestampExpiry, now: time.Now}
	if opts != nil {
		if opts.SnapshotExpiry < 0 || opts.TimestampExpiry < 0 {
			return nil, fmt.Errorf("%w: negative expiry", ErrInvalid)
		}
		if opts.SnapshotExpiry > 0 {
			o.snapshotTTL = opts.SnapshotExpiry
		}
		if opts.TimestampExpiry > 0 {
			o.tsTTL = opts.TimestampExpiry
		}
		if opts.Now != nil {
			o.now = opts.Now
		}
	}
	for _, k := range []struct {
		role string
		dst  **signer
	}{{metadata.SNAPSHOT, &o.snapshot}, {metadata.TIMESTAMP, &o.timestamp}} {
		priv, _, err := keys.LoadOrGenerate(filepath.Join(keyDir, k.role+".key"), keys.AlgEd25519, 0)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", k.role, err)
		}
		s, err := newSigner(priv)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", k.role, err)
		}
		if err := keys.SavePublic(filepath.Join(keyDir, k.role+".pub"), priv.Public()); err != nil {
			return nil, err
		}
		*k.dst = s
	}
	return o, nil
}

// Keys returns the online public keys, for the operator's root.json.
func (o *Online) Keys() OnlineKeys {
	return OnlineKeys{Snapshot: o.snapshot.priv.Public(), Timestamp: o.timestamp.priv.Public()}
}

// Accept checks an upload against cur and returns the repository with it.
// root (may be nil: keep cur's) must be the next version of cur.Root,
// signed by the threshold of cur's root keys and of its own, and name
// this Online's snapshot and timestamp keys; the first root of an empty
// Repo must be version 1, signed by its own root keys. targets (may be nil:
// keep cur's) must be signed by the (new) root's targets keys, have a
// higher version than cur.Targets, not be expired, and list only
// well-formed Bosun targets. Then Accept signs a new snapshot.json and
// timestamp.json (versions one higher).
//
// On any refusal it returns the zero Repo and an error wrapping
// ErrUntrusted, ErrRollback, ErrExpired or ErrInvalid; cur is never
// modified, so storing nothing is enough.
func (o *Online) Accept(cur Repo, root, targets []byte) (Repo, error) {
	now := o.now()
	if len(root) > MaxRootSize {
		return Repo{}, fmt.Errorf("%w: root.json is %d bytes, over the limit of %d", ErrInvalid, len(root), MaxRootSize)
	}
	if len(targets) > MaxTargetsSize {
		return Repo{}, fmt.Errorf("%w: targets.json is %d bytes, over the limit of %d", ErrInvalid, len(targets), MaxTargetsSize)
	}
	next := Repo{Root: cur.Root, Targets: cur.Targets}
	var trusted *metadata.Metadata[metadata.RootType]
	if len(cur.Root) > 0 {
		var err error
		if trusted, err = parseRoot(cur.Root); err != nil {
			return Repo{}, fmt.Errorf("stored root: %w", err)
		}
	}
	if len(root) > 0 {
		nr, err := parseRoot(root)
		if err != nil {
			return Repo{}, err
		}
		want := int64(1)
		if trusted != nil {
			want = trusted.Signed.Version + 1
			if err := trusted.VerifyDelegate(metadata.ROOT, nr); err != nil {
				return Repo{}, fmt.Errorf("root.json v%d against the trusted v%d: %w", nr.Signed.Version, trusted.Signed.Version, classify(err))
			}
		}
		if nr.Signed.Version != want {
			if nr.Signed.Version < want {
				return Repo{}, fmt.Errorf("%w: root.json v%d, the next version is v%d", ErrRollback, nr.Signed.Version, want)
			}
			return Repo{}, fmt.Errorf("%w: root.json v%d, the next version is v%d (upload each version in turn)", ErrInvalid, nr.Signed.Version, want)
		}
		if err := nr.VerifyDelegate(metadata.ROOT, nr); err != nil {
			return Repo{}, fmt.Errorf("root.json v%d against itself: %w", nr.Signed.Version, classify(err))
		}
		if nr.Signed.IsExpired(now) {
			return Repo{}, fmt.Errorf("%w: root.json v%d expired at %s", ErrExpired, nr.Signed.Version, nr.Signed.Expires.Format(time.RFC3339))
		}
		if nr.Signed.ConsistentSnapshot {
			return Repo{}, fmt.Errorf("%w: root.json: consistent_snapshot must be false", ErrInvalid)
		}
		if err := o.ownsOnlineRoles(nr); err != nil {
			return Repo{}, err
		}
		trusted, next.Root = nr, root
	}
	if trusted == nil {
		return Repo{}, fmt.Errorf("%w: no root.json yet: upload the operator's 1.root.json first", ErrInvalid)
	}
	if err := o.ownsOnlineRoles(trusted); err != nil {
		return Repo{}, err
	}
	if trusted.Signed.IsExpired(now) {
		return Repo{}, fmt.Errorf("%w: root.json v%d expired at %s (renew it with `bosun release rotate` and upload it)", ErrExpired, trusted.Signed.Version, trusted.Signed.Expires.Format(time.RFC3339))
	}
	var curTargets int64
	if len(cur.Targets) > 0 {
		ct, err := parseTargets(cur.Targets)
		if err != nil {
			return Repo{}, fmt.Errorf("stored targets: %w", err)
		}
		curTargets = ct.Signed.Version
	}
	if len(targets) > 0 {
		nt, err := parseTargets(targets)
		if err != nil {
			return Repo{}, err
		}
		if nt.Signed.Version <= curTargets {
			return Repo{}, fmt.Errorf("%w: targets.json v%d, the trusted one is v%d", ErrRollback, nt.Signed.Version, curTargets)
		}
		next.Targets = targets
	}
	if len(next.Targets) == 0 {
		return Repo{}, fmt.Errorf("%w: no targets.json yet: upload the operator's targets.json", ErrInvalid)
	}
	// Check the targets that will be served against the root that will be
	// served: a new targets key needs a targets.json signed with it.
	nt, err := parseTargets(next.Targets)
	if err != nil {
		return Repo{}, err
	}
	if err := trusted.VerifyDelegate(metadata.TARGETS, nt); err != nil {
		return Repo{}, fmt.Errorf("targets.json v%d: %w", nt.Signed.Version, classify(err))
	}
	if nt.Signed.IsExpired(now) {
		return Repo{}, fmt.Errorf("%w: targets.json v%d expired at %s (re-sign it with `bosun release sign`)", ErrExpired, nt.Signed.Version, nt.Signed.Expires.Format(time.RFC3339))
	}
	if nt.Signed.Delegations != nil {
		return Repo{}, fmt.Errorf("%w: targets.json: delegations are not supported", ErrInvalid)
	}
	for path, tf := range nt.Signed.Targets {
		if _, err := targetInfo(path, tf); err != nil {
			return Repo{}, err
		}
	}
	var snapV, tsV int64
	if len(cur.Snapshot) > 0 {
		s, err := parseSnapshot(cur.Snapshot)
		if err != nil {
			return Repo{}, fmt.Errorf("stored snapshot: %w", err)
		}
		snapV = s.Signed.Version
	}
	if len(cur.Timestamp) > 0 {
		t, err := parseTimestamp(cur.Timestamp)
		if err != nil {
			return Repo{}, fmt.Errorf("stored timestamp: %w", err)
		}
		tsV = t.Signed.Version
	}
	if next.Snapshot, err = o.makeSnapshot(nt.Signed.Version, snapV+1, now); err != nil {
		return Repo{}, err
	}
	if next.Timestamp, err = o.makeTimestamp(next.Snapshot, tsV+1, now); err != nil {
		return Repo{}, err
	}
	return next, nil
}

// Refresh re-signs what is about to expire: the snapshot when less than
// half its lifetime is left (and then the timestamp with it), the
// timestamp when less than half of its own is left. The cloud calls it
// periodically (more often than half the timestamp lifetime, e.g. every
// 10 minutes) for every organisation and stores next when changed is true.
// Without it devices refuse the repository as frozen once the timestamp
// expires. A Repo that has not accepted a targets.json yet is left alone.
func (o *Online) Refresh(cur Repo) (next Repo, changed bool, err error) {
	if len(cur.Root) == 0 || len(cur.Targets) == 0 || len(cur.Snapshot) == 0 || len(cur.Timestamp) == 0 {
		return cur, false, nil
	}
	now := o.now()
	root, err := parseRoot(cur.Root)
	if err != nil {
		return Repo{}, false, fmt.Errorf("stored root: %w", err)
	}
	if err := o.ownsOnlineRoles(root); err != nil {
		return Repo{}, false, err
	}
	snap, err := parseSnapshot(cur.Snapshot)
	if err != nil {
		return Repo{}, false, fmt.Errorf("stored snapshot: %w", err)
	}
	ts, err := parseTimestamp(cur.Timestamp)
	if err != nil {
		return Repo{}, false, fmt.Errorf("stored timestamp: %w", err)
	}
	next = cur
	if snap.Signed.Expires.Sub(now) < o.snapshotTTL/2 {
		tv := snap.Signed.Meta["targets.json"]
		if tv == nil {
			return Repo{}, false, fmt.Errorf("%w: stored snapshot names no targets.json", ErrInvalid)
		}
		if next.Snapshot, err = o.makeSnapshot(tv.Version, snap.Signed.Version+1, now); err != nil {
			return Repo{}, false, err
		}
		changed = true
	}
	if changed || ts.Signed.Expires.Sub(now) < o.tsTTL/2 {
		if next.Timestamp, err = o.makeTimestamp(next.Snapshot, ts.Signed.Version+1, now); err != nil {
			return Repo{}, false, err
		}
		changed = true
	}
	return next, changed, nil
}

// ownsOnlineRoles checks that root delegates snapshot and timestamp to
// exactly this Online's keys (threshold 1): otherwise what it signs would
// not verify on any device.
func (o *Online) ownsOnlineRoles(root *metadata.Metadata[metadata.RootType]) error {
	for _, rs := range []struct {
		role string
		s    *signer
	}{{metadata.SNAPSHOT, o.snapshot}, {metadata.TIMESTAMP, o.timestamp}} {
		r := root.Signed.Roles[rs.role]
		if r == nil || r.Threshold != 1 || !slices.Equal(r.KeyIDs, []string{rs.s.id}) {
			return fmt.Errorf("%w: root.json v%d does not name this cloud's %s key %s (run `bosun release init` or a root rotation with the cloud's public keys)",
				ErrInvalid, root.Signed.Version, rs.role, rs.s.id)
		}
	}
	return nil
}

func (o *Online) makeSnapshot(targetsVersion, version int64, now time.Time) ([]byte, error) {
	s := metadata.Snapshot(now.Add(o.snapshotTTL).UTC().Truncate(time.Second))
	s.Signed.Version = version
	s.Signed.Meta["targets.json"] = metadata.MetaFile(targetsVersion)
	return sign(s, o.snapshot)
}

func (o *Online) makeTimestamp(snapshot []byte, version int64, now time.Time) ([]byte, error) {
	s, err := parseSnapshot(snapshot)
	if err != nil {
		return nil, err
	}
	t := metadata.Timestamp(now.Add(o.tsTTL).UTC().Truncate(time.Second))
	t.Signed.Version = version
	sum := sha256.Sum256(snapshot)
	t.Signed.Meta["snapshot.json"] = &metadata.MetaFiles{Version: s.Signed.Version, Length: int64(len(snapshot)), Hashes: metadata.Hashes{"sha256": sum[:]}}
	return sign(t, o.timestamp)
}

// Files returns r as the files a device fetches, by name: root.json and
// N.root.json for the newest root, targets.json, snapshot.json and
// timestamp.json. The cloud must keep every N.root.json it ever accepted
// (a device pinned to version 1 fetches 2.root.json, 3.root.json, ...),
// and answer "not found" for a version it does not have.
func (r Repo) Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(r.Root) > 0 {
		root, err := parseRoot(r.Root)
		if err != nil {
			return nil, err
		}
		out["root.json"] = r.Root
		out[rootFileName(root.Signed.Version)] = r.Root
	}
	for name, b := range map[string][]byte{"targets.json": r.Targets, "snapshot.json": r.Snapshot, "timestamp.json": r.Timestamp} {
		if len(b) > 0 {
			out[name] = b
		}
	}
	return out, nil
}

// ListTargets returns the targets of a targets.json that Accept accepted,
// sorted by path, for the cloud to show or to match with artifacts. It
// checks their form, not their signatures.
func ListTargets(targetsJSON []byte) ([]TargetInfo, error) {
	t, err := parseTargets(targetsJSON)
	if err != nil {
		return nil, err
	}
	var out []TargetInfo
	for path, tf := range t.Signed.Targets {
		ti, err := targetInfo(path, tf)
		if err != nil {
			return nil, err
		}
		out = append(out, ti)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// RepoInfo describes a Repo: each role's version and expiry (zero when the
// Repo has no such file) and the targets it lists.
type RepoInfo struct {
	RootVersion, TargetsVersion, SnapshotVersion, TimestampVersion int64
	RootExpires, TargetsExpires, SnapshotExpires, TimestampExpires time.Time
	Targets                                                        []TargetInfo
}

// Info parses r (metadata Accept made; signatures are not checked again)
// and describes it.
func (r Repo) Info() (RepoInfo, error) {
	var in RepoInfo
	if len(r.Root) > 0 {
		m, err := parseRoot(r.Root)
		if err != nil {
			return RepoInfo{}, err
		}
		in.RootVersion, in.RootExpires = m.Signed.Version, m.Signed.Expires
	}
	if len(r.Targets) > 0 {
		m, err := parseTargets(r.Targets)
		if err != nil {
			return RepoInfo{}, err
		}
		in.TargetsVersion, in.TargetsExpires = m.Signed.Version, m.Signed.Expires
		if in.Targets, err = ListTargets(r.Targets); err != nil {
			return RepoInfo{}, err
		}
	}
	if len(r.Snapshot) > 0 {
		m, err := parseSnapshot(r.Snapshot)
		if err != nil {
			return RepoInfo{}, err
		}
		in.SnapshotVersion, in.SnapshotExpires = m.Signed.Version, m.Signed.Expires
	}
	if len(r.Timestamp) > 0 {
		m, err := parseTimestamp(r.Timestamp)
		if err != nil {
			return RepoInfo{}, err
		}
		in.TimestampVersion, in.TimestampExpires = m.Signed.Version, m.Signed.Expires
	}
	return in, nil
}
