// Package release signs and verifies the metadata that says which update
// bundles a Bosun device may install, with The Update Framework (TUF, through
// github.com/theupdateframework/go-tuf/v2), so that a breached cloud can
// delay updates but never forge one.
//
// There are three sides, one file each:
//
//   - The operator (operator.go): InitRepo makes the offline root and
//     targets keys and the first root.json and targets.json in a directory on
//     the operator's machine; SignTarget adds a bundle to targets.json and
//     signs it; RemoveTarget takes one out again (retiring a bad
//     version); RotateRoot writes the next N.root.json (new root, targets or
//     online keys), signed by the old and the new root keys. These keys never
//     touch the cloud.
//   - The cloud (online.go): Online holds the online snapshot and timestamp
//     keys. Accept takes an uploaded root.json and/or targets.json, refuses
//     it unless it verifies against the trusted root and moves versions
//     forward, and makes the snapshot.json and timestamp.json that go with
//     it; Refresh re-signs them before they expire. Online works on bytes
//     (Repo) in and out: storing them is the caller's job.
//   - The device (verifier.go): Verifier runs the TUF client workflow
//     (go-tuf's updater: signatures, thresholds, versions, expiry, root
//     rotation) against a root pinned at install time, keeps the trusted
//     metadata in a state directory, and answers which length and hashes a
//     bundle NAME VERSION must have (TargetInfo, Check). It fetches
//     metadata through a Fetcher: HTTPFetcher (the cloud) or DirFetcher (a
//     local directory).
//
// An artifact NAME (NameRE) at VERSION (semantic version 2.0.0, no leading
// "v") is the TUF target NAME/VERSION/bundle.tar.gz with the custom metadata
// {"bosun":{"name":NAME,"version":VERSION}}. All keys are Ed25519; private
// keys are PKCS#8 PEM files of mode 0600 (pkg/keys), never overwritten.
//
// Metadata files are root.json and N.root.json, targets.json, snapshot.json
// and timestamp.json, with consistent_snapshot false: a device fetches them
// by those names.
package release

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bosunhq/bosun/pkg/keys"
)

// Default lifetimes of signed metadata.
const (
	DefaultRootExpiry      = 365 * 24 * time.Hour
	DefaultTargetsExpiry   = 90 * 24 * time.Hour
	DefaultSnapshotExpiry  = 7 * 24 * time.Hour
	DefaultTimestampExpiry = 24 * time.Hour
)

// Size limits of metadata a Verifier fetches and Online accepts. A file
// of exactly the limit is accepted, one byte more is refused.
const (
	MaxRootSize      = 512 << 10
	MaxTargetsSize   = 4 << 20
	MaxSnapshotSize  = 1 << 20
	MaxTimestampSize = 16 << 10
)

// Errors. Every refusal wraps one of them (and, where there is one, the
// go-tuf error that says more).
var (
	// ErrUntrusted: metadata is not signed by the threshold of keys the
	// trusted root names for its role (e.g. targets signed by the cloud).
	ErrUntrusted = errors.New("release: metadata not signed by the trusted keys")
	// ErrRollback: metadata is older than what is already trusted.
	ErrRollback = errors.New("release: metadata older than the trusted version")
	// ErrExpired: metadata is past its expiry (a freeze attack, or an
	// operator or cloud that did not re-sign in time).
	ErrExpired = errors.New("release: metadata expired")
	// ErrTampered: bytes do not match the length or hashes that signed
	// metadata gives for them.
	ErrTampered = errors.New("release: length or hash mismatch")
	// ErrInvalid: metadata that cannot be parsed or breaks Bosun's rules
	// (wrong type, bad target path or custom metadata, foreign online keys).
	ErrInvalid = errors.New("release: invalid metadata")
	// ErrUnknownTarget: the trusted targets name no such NAME/VERSION.
	ErrUnknownTarget = errors.New("release: no such target")
	// ErrBadName: a NAME or VERSION outside the artifact rules.
	ErrBadName = errors.New("release: bad artifact name or version")
	// ErrNotFound is what a Fetcher returns (wrapped) for a file the
	// repository does not have.
	ErrNotFound = errors.New("release: metadata file not found")
	// ErrKeyExists: InitRepo found a repository (keys or metadata) in dir.
	ErrKeyExists = errors.New("release: repository already initialised")
	// ErrNoKey: the directory holds no private key for a role to sign.
	ErrNoKey = errors.New("release: no private key for role")
)

// NameRE is what an artifact name must match.
var NameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// semverRE is semantic version 2.0.0 (semver.org's regular expression).
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// MaxVersionLen is the longest VERSION CheckName accepts, in bytes.
const MaxVersionLen = 128

// CheckName reports whether name (NameRE: at most 64 characters) and
// version (a semantic version of at most MaxVersionLen bytes, no leading
// "v") follow the artifact rules.
func CheckName(name, version string) error {
	if !NameRE.MatchString(name) {
		return fmt.Errorf("%w: name %q must match %s", ErrBadName, name, NameRE)
	}
	if len(version) > MaxVersionLen || !semverRE.MatchString(version) {
		return fmt.Errorf("%w: version %q is not a semantic version (like 1.2.3, no leading v)", ErrBadName, version)
	}
	return nil
}

// TargetPath is the TUF target path of an artifact.
func TargetPath(name, version string) string { return name + "/" + version + "/bundle.tar.gz" }

// custom is the TUF custom metadata of a Bosun target.
type custom struct {
	Bosun struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"bosun"`
}

// TargetInfo is what signed metadata says about one artifact.
type TargetInfo struct {
	Path          string            // NAME/VERSION/bundle.tar.gz
	Name, Version string            // from the custom metadata, equal to Path's
	Length        int64             // exact length in bytes
	Hashes        map[string][]byte // "sha256" always, "sha512" when signed
}

// targetInfo checks that tf is a well-formed Bosun target and converts it.
func targetInfo(path string, tf *metadata.TargetFiles) (TargetInfo, error) {
	parts := strings.Split(path, "/")
	if len(parts) != 3 || parts[2] != "bundle.tar.gz" {
		return TargetInfo{}, fmt.Errorf("%w: target path %q is not NAME/VERSION/bundle.tar.gz", ErrInvalid, path)
	}
	if err := CheckName(parts[0], parts[1]); err != nil {
		return TargetInfo{}, fmt.Errorf("%w: target %q: %w", ErrInvalid, path, err)
	}
	var c custom
	if tf.Custom == nil || json.Unmarshal(*tf.Custom, &c) != nil || c.Bosun.Name != parts[0] || c.Bosun.Version != parts[1] {
		return TargetInfo{}, fmt.Errorf("%w: target %q: custom metadata must be {\"bosun\":{\"name\":%q,\"version\":%q}}", ErrInvalid, path, parts[0], parts[1])
	}
	if tf.Length < 0 {
		return TargetInfo{}, fmt.Errorf("%w: target %q: negative length", ErrInvalid, path)
	}
	if len(tf.Hashes["sha256"]) != sha256.Size {
		return TargetInfo{}, fmt.Errorf("%w: target %q: no sha256", ErrInvalid, path)
	}
	ti := TargetInfo{Path: path, Name: parts[0], Version: parts[1], Length: tf.Length, Hashes: map[string][]byte{}}
	for alg, h := range tf.Hashes {
		if alg == "sha256" || alg == "sha512" {
			ti.Hashes[alg] = bytes.Clone(h)
		}
	}
	return ti, nil
}

// Check reads r to its end and verifies that it has exactly t.Length bytes
// and the hashes of t (sha256, and sha512 when present). It reads at most
// t.Length+1 bytes.
func (t TargetInfo) Check(r io.Reader) error {
	if len(t.Hashes["sha256"]) == 0 {
		return fmt.Errorf("%w: %s: no sha256 to check", ErrTampered, t.Path)
	}
	hs := map[string]hash.Hash{}
	var ws []io.Writer
	for alg := range t.Hashes {
		var h hash.Hash
		switch alg {
		case "sha256":
			h = sha256.New()
		case "sha512":
			h = sha512.New()
		default:
			continue
		}
		hs[alg] = h
		ws = append(ws, h)
	}
	n, err := io.Copy(io.MultiWriter(ws...), io.LimitReader(r, t.Length+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", t.Path, err)
	}
	if n != t.Length {
		more := ""
		if n > t.Length {
			more = " or more"
		}
		return fmt.Errorf("%w: %s: %d%s bytes, signed length %d", ErrTampered, t.Path, n, more, t.Length)
	}
	for alg, h := range hs {
		if !bytes.Equal(h.Sum(nil), t.Hashes[alg]) {
			return fmt.Errorf("%w: %s: %s differs from the signed one", ErrTampered, t.Path, alg)
		}
	}
	return nil
}

// CheckFile is Check on the file at path.
func (t TargetInfo) CheckFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return t.Check(f)
}

// OnlineKeys are the public keys of the cloud's online roles.
type OnlineKeys struct {
	Snapshot, Timestamp crypto.PublicKey // Ed25519
}

// signer is a private key with its TUF key and key id.
type signer struct {
	priv ed25519.PrivateKey
	key  *metadata.Key
	id   string
	sig  signature.Signer
}

func newSigner(k crypto.Signer) (*signer, error) {
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T, release keys are Ed25519", keys.ErrUnsupportedKey, k)
	}
	key, id, err := tufKey(priv.Public())
	if err != nil {
		return nil, err
	}
	s, err := signature.LoadSigner(priv, crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	return &signer{priv: priv, key: key, id: id, sig: s}, nil
}

// tufKey is pub as a TUF key, with its key id.
func tufKey(pub crypto.PublicKey) (*metadata.Key, string, error) {
	if _, ok := pub.(ed25519.PublicKey); !ok {
		return nil, "", fmt.Errorf("%w: %T, release keys are Ed25519", keys.ErrUnsupportedKey, pub)
	}
	key, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	id, err := key.ID()
	if err != nil {
		return nil, "", err
	}
	return key, id, nil
}

// KeyID is the TUF key id of an Ed25519 public key, as root.json names it.
func KeyID(pub crypto.PublicKey) (string, error) {
	_, id, err := tufKey(pub)
	return id, err
}

// sign replaces the signatures of m by those of ss.
func sign[T metadata.Roles](m *metadata.Metadata[T], ss ...*signer) ([]byte, error) {
	m.ClearSignatures()
	for _, s := range ss {
		if _, err := m.Sign(s.sig); err != nil {
			return nil, err
		}
	}
	return m.ToBytes(true)
}

// parse decodes metadata of one type; wrong types and bad JSON are ErrInvalid.
func parseRoot(b []byte) (*metadata.Metadata[metadata.RootType], error) {
	m, err := metadata.Root().FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: root.json: %w", ErrInvalid, err)
	}
	return m, nil
}

func parseTargets(b []byte) (*metadata.Metadata[metadata.TargetsType], error) {
	m, err := metadata.Targets().FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: targets.json: %w", ErrInvalid, err)
	}
	return m, nil
}

func parseSnapshot(b []byte) (*metadata.Metadata[metadata.SnapshotType], error) {
	m, err := metadata.Snapshot().FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot.json: %w", ErrInvalid, err)
	}
	return m, nil
}

func parseTimestamp(b []byte) (*metadata.Metadata[metadata.TimestampType], error) {
	m, err := metadata.Timestamp().FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: timestamp.json: %w", ErrInvalid, err)
	}
	return m, nil
}

// classify wraps a go-tuf error in the sentinel that names its kind.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUntrusted), errors.Is(err, ErrRollback), errors.Is(err, ErrExpired),
		errors.Is(err, ErrTampered), errors.Is(err, ErrInvalid), errors.Is(err, ErrUnknownTarget):
		return err
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		return fmt.Errorf("%w: %w", ErrRollback, err)
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return fmt.Errorf("%w: %w", ErrExpired, err)
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}), errors.Is(err, &metadata.ErrDownloadLengthMismatch{}):
		return fmt.Errorf("%w: %w", ErrTampered, err)
	case errors.Is(err, &metadata.ErrDownloadHTTP{}):
		return fmt.Errorf("%w: %w", ErrNotFound, err) // the only HTTP error fetchAdapter makes: 404
	}
	var fe *fetchError
	var pe *fs.PathError
	if errors.As(err, &fe) || errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err // the Fetcher's own error, or the state directory's
	}
	// What remains is metadata go-tuf could not parse or use (JSON of the
	// wrong shape, a role missing from the snapshot...).
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

// rootFileName is the versioned name of a root: "2.root.json".
func rootFileName(version int64) string { return strconv.FormatInt(version, 10) + ".root.json" }
