package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/bosunhq/bosun/pkg/keys"
)

// Fetcher fetches one metadata file of the repository by name
// ("timestamp.json", "snapshot.json", "targets.json", "2.root.json"),
// reading at most maxLen bytes. A file the repository does not have is an
// error wrapping ErrNotFound: that is how the Verifier learns there is no
// newer root.
type Fetcher interface {
	Fetch(ctx context.Context, name string, maxLen int64) ([]byte, error)
}

// VerifierOptions configures a Verifier. nil means all defaults.
type VerifierOptions struct {
	// Now is the clock that expiry is checked against. nil means
	// time.Now.
	Now func() time.Time
}

// Verifier is the device's side of a release repository: it answers which
// bundle NAME VERSION the operator signed, after refreshing the metadata
// the TUF way (go-tuf's updater: root rotation one version at a time,
// signature thresholds, rollback and freeze protection).
//
// The trusted metadata lives in stateDir (root.json, timestamp.json,
// snapshot.json, targets.json, 0600). A refresh runs in a scratch
// directory inside it and is copied over the trusted files only when the
// whole refresh and the target lookup succeed, so a refused update leaves
// the trusted state exactly as it was. A Verifier is safe for concurrent
// use (refreshes take turns); one stateDir must have one Verifier.
type Verifier struct {
	pinned   []byte
	fetch    Fetcher
	stateDir string
	now      func() time.Time

	mu sync.Mutex // serialises refreshes of stateDir
}

// trustedFiles are the metadata files a Verifier keeps in its stateDir.
var trustedFiles = []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"}

// NewVerifier makes a Verifier that trusts pinnedRoot (a root.json
// installed with the device, typically 1.root.json) and the newer roots it
// signs, fetches metadata with fetch and keeps it in stateDir (created,
// 0700). pinnedRoot must be a valid root signed by its own root keys.
func NewVerifier(pinnedRoot []byte, fetch Fetcher, stateDir string, opts *VerifierOptions) (*Verifier, error) {
	if fetch == nil {
		return nil, errors.New("release: NewVerifier: nil Fetcher")
	}
	if _, err := trustedmetadata.New(pinnedRoot); err != nil {
		return nil, fmt.Errorf("pinned root: %w", classify(err))
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	// A refresh cut short by a crash leaves its scratch directory behind;
	// it was never trusted.
	stale, err := filepath.Glob(filepath.Join(stateDir, ".refresh-*"))
	if err != nil {
		return nil, err
	}
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	v := &Verifier{pinned: bytes.Clone(pinnedRoot), fetch: fetch, stateDir: stateDir, now: time.Now}
	if opts != nil && opts.Now != nil {
		v.now = opts.Now
	}
	return v, nil
}

// Target refreshes the trusted metadata and returns what it says about
// artifact name at version. Errors wrap ErrUntrusted (bad signatures, e.g.
// targets signed by the cloud's keys), ErrRollback, ErrExpired (also a
// frozen repository: no fresh timestamp), ErrTampered (metadata bytes that
// differ from what the timestamp or snapshot signed), ErrUnknownTarget,
// ErrBadName, or the Fetcher's error. ctx bounds the fetches.
func (v *Verifier) Target(ctx context.Context, name, version string) (TargetInfo, error) {
	if err := CheckName(name, version); err != nil {
		return TargetInfo{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	scratch, err := os.MkdirTemp(v.stateDir, ".refresh-")
	if err != nil {
		return TargetInfo{}, err
	}
	defer os.RemoveAll(scratch)
	root, err := v.trustedRoot()
	if err != nil {
		return TargetInfo{}, err
	}
	for _, f := range trustedFiles[1:] {
		b, err := os.ReadFile(filepath.Join(v.stateDir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return TargetInfo{}, err
		}
		if err := os.WriteFile(filepath.Join(scratch, f), b, 0o600); err != nil {
			return TargetInfo{}, err
		}
	}
	const base = "bosun-release:///"
	cfg, err := config.New(base, root)
	if err != nil {
		return TargetInfo{}, err
	}
	cfg.RootMaxLength, cfg.TimestampMaxLength = MaxRootSize, MaxTimestampSize
	cfg.SnapshotMaxLength, cfg.TargetsMaxLength = MaxSnapshotSize, MaxTargetsSize
	cfg.MaxDelegations = 0
	// The updater's download functions are unused: bundles come through
	// the OTA worker, which checks them with TargetInfo.Check.
	cfg.LocalMetadataDir = scratch
	cfg.LocalTargetsDir = filepath.Join(scratch, "targets")
	cfg.PrefixTargetsWithHash = false
	cfg.Fetcher = &fetchAdapter{ctx: ctx, f: v.fetch, base: base}
	up, err := updater.New(cfg)
	if err != nil {
		return TargetInfo{}, classify(err)
	}
	up.UnsafeSetRefTime(v.now().UTC())
	if err := up.Refresh(); err != nil {
		return TargetInfo{}, fmt.Errorf("refreshing release metadata: %w", classify(err))
	}
	path := TargetPath(name, version)
	tf, ok := up.GetTopLevelTargets()[path]
	if !ok {
		return TargetInfo{}, fmt.Errorf("%w: %s %s is not signed for release", ErrUnknownTarget, name, version)
	}
	ti, err := targetInfo(path, tf)
	if err != nil {
		return TargetInfo{}, err
	}
	if err := v.commit(scratch); err != nil {
		return TargetInfo{}, fmt.Errorf("saving trusted metadata: %w", err)
	}
	return ti, nil
}

// trustedRoot is the newest of the pinned root and the stored one (a
// device may be reinstalled with a newer pinned root than it has seen).
func (v *Verifier) trustedRoot() ([]byte, error) {
	stored, err := os.ReadFile(filepath.Join(v.stateDir, "root.json"))
	if errors.Is(err, os.ErrNotExist) {
		return v.pinned, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := parseRoot(stored)
	if err != nil {
		return v.pinned, nil // a damaged state file: start again from the pin
	}
	p, err := parseRoot(v.pinned)
	if err != nil {
		return nil, err
	}
	if s.Signed.Version > p.Signed.Version {
		return stored, nil
	}
	return v.pinned, nil
}

// commit copies the refreshed metadata over the trusted files that
// changed, each atomically; root.json goes first, so that a crash halfway
// leaves files the next refresh either verifies or fetches again.
func (v *Verifier) commit(scratch string) error {
	for _, f := range trustedFiles {
		b, err := os.ReadFile(filepath.Join(scratch, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		old, err := os.ReadFile(filepath.Join(v.stateDir, f))
		if err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := keys.WriteFileAtomic(filepath.Join(v.stateDir, f), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// fetchAdapter is go-tuf's fetcher on top of a Fetcher for one refresh.
// go-tuf's interface has no context, so the adapter carries the one of
// the Target call it was made for, and dies with it.
type fetchAdapter struct {
	ctx  context.Context
	f    Fetcher
	base string
}

func (a *fetchAdapter) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	name, ok := strings.CutPrefix(urlPath, a.base)
	if !ok {
		return nil, fmt.Errorf("release: unexpected metadata URL %q", urlPath)
	}
	b, err := a.f.Fetch(a.ctx, name, maxLength)
	if errors.Is(err, ErrNotFound) {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: name}
	}
	if err != nil {
		return nil, &fetchError{name: name, err: err}
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is over %d bytes", name, maxLength)}
	}
	return b, nil
}

// fetchError is a Fetcher's error as it passes through go-tuf, so that
// classify leaves it as it is.
type fetchError struct {
	name string
	err  error
}

func (e *fetchError) Error() string { return "fetching " + e.name + ": " + e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// HTTPFetcher fetches metadata files from BaseURL/NAME over HTTP; a 404 is
// ErrNotFound.
type HTTPFetcher struct {
	// BaseURL is where the files are, e.g. https://cloud/v1/ota/metadata.
	BaseURL string
	// Client makes the requests. nil means http.DefaultClient; give it a
	// timeout or bound the calls with their context.
	Client *http.Client
}

// Fetch implements Fetcher.
func (h *HTTPFetcher) Fetch(ctx context.Context, name string, maxLen int64) ([]byte, error) {
	if err := checkFileName(name); err != nil {
		return nil, err
	}
	u, err := url.JoinPath(h.BaseURL, name)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s: HTTP %s", name, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLen+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxLen {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTampered, name, maxLen)
	}
	return b, nil
}

// DirFetcher fetches metadata files from a local directory (a USB stick,
// an image built offline, a test): the file DirFetcher/NAME. A missing
// file is ErrNotFound; a name with a path separator is refused.
type DirFetcher string

// Fetch implements Fetcher.
func (d DirFetcher) Fetch(ctx context.Context, name string, maxLen int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkFileName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(string(d), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLen+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxLen {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTampered, name, maxLen)
	}
	return b, nil
}

// checkFileName refuses metadata names that are not one plain file name
// (go-tuf asks only for ROLE.json and N.root.json).
func checkFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\?#%") {
		return fmt.Errorf("%w: metadata name %q", ErrInvalid, name)
	}
	return nil
}
