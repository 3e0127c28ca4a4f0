package release

import (
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bosunhq/bosun/pkg/keys"
)

// An operator's repository directory holds:
//
//	keys/root-<keyid>.key      the root private key(s), 0600
//	keys/targets-<keyid>.key   the targets private key(s), 0600
//	root.json, N.root.json     the newest root, and every version of it
//	targets.json               the newest targets
//
// A key file is named by its TUF key id, so a new key never has the name of
// an old one; signing uses whichever keys of the directory the root names
// for the role. Retired keys stay until the operator deletes them.
const keysDir = "keys"

// InitRepo makes a new release repository in dir (created if missing, 0700):
// an Ed25519 root key and targets key (kept offline, with the operator),
// root.json and 1.root.json (version 1, expiring in DefaultRootExpiry)
// naming them and the cloud's online snapshot and timestamp keys, and an
// empty targets.json version 1 signed by the targets key. It refuses a dir
// that already holds a root.json or keys (ErrKeyExists): nothing there is
// ever overwritten.
func InitRepo(dir string, online OnlineKeys) error {
	return initRepo(dir, online, time.Now())
}

func initRepo(dir string, online OnlineKeys, now time.Time) error {
	snap, _, err := tufKey(online.Snapshot)
	if err != nil {
		return fmt.Errorf("snapshot key: %w", err)
	}
	ts, _, err := tufKey(online.Timestamp)
	if err != nil {
		return fmt.Errorf("timestamp key: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "root.json")); err == nil {
		return fmt.Errorf("%w: %s holds a root.json", ErrKeyExists, dir)
	}
	if found, _ := filepath.Glob(filepath.Join(dir, keysDir, "*.key")); len(found) > 0 {
		return fmt.Errorf("%w: %s holds keys", ErrKeyExists, filepath.Join(dir, keysDir))
	}
	if err := os.MkdirAll(filepath.Join(dir, keysDir), 0o700); err != nil {
		return err
	}
	rootKey, err := newKey(dir, metadata.ROOT)
	if err != nil {
		return err
	}
	targetsKey, err := newKey(dir, metadata.TARGETS)
	if err != nil {
		return err
	}
	root := metadata.Root(now.Add(DefaultRootExpiry).UTC().Truncate(time.Second))
	root.Signed.ConsistentSnapshot = false
	for _, rk := range []struct {
		role string
		key  *metadata.Key
	}{{metadata.ROOT, rootKey.key}, {metadata.TARGETS, targetsKey.key}, {metadata.SNAPSHOT, snap}, {metadata.TIMESTAMP, ts}} {
		if err := root.Signed.AddKey(rk.key, rk.role); err != nil {
			return err
		}
	}
	rootJSON, err := sign(root, rootKey)
	if err != nil {
		return err
	}
	targets := metadata.Targets(now.Add(DefaultTargetsExpiry).UTC().Truncate(time.Second))
	targetsJSON, err := sign(targets, targetsKey)
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{rootFileName(1): rootJSON, "root.json": rootJSON, "targets.json": targetsJSON} {
		if err := keys.WriteFileAtomic(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// SignTarget adds the bundle at bundlePath to dir's targets.json as artifact
// name at version (replacing an earlier signature of the same name and
// version), with its length, sha256 and sha512, bumps the version, sets the
// expiry to expires from now (0 means DefaultTargetsExpiry), signs it with
// the targets key(s) of dir and writes it back. It returns the new
// targets.json, the file to upload to the cloud.
func SignTarget(dir, name, version, bundlePath string, expires time.Duration) ([]byte, error) {
	return signTarget(dir, name, version, bundlePath, expires, time.Now())
}

func signTarget(dir, name, version, bundlePath string, expires time.Duration, now time.Time) ([]byte, error) {
	return editTargets(dir, name, version, expires, now, func(t *metadata.TargetsType, path string) error {
		tf, err := targetFile(bundlePath)
		if err != nil {
			return err
		}
		c := custom{}
		c.Bosun.Name, c.Bosun.Version = name, version
		cb, err := json.Marshal(c)
		if err != nil {
			return err
		}
		raw := json.RawMessage(cb)
		tf.Custom = &raw
		tf.Path = path
		t.Targets[path] = tf
		return nil
	})
}

// RemoveTarget takes artifact name at version out of dir's targets.json,
// bumps the version, sets the expiry to expires from now (0 means
// DefaultTargetsExpiry), signs it and writes it back; once the cloud
// serves it, devices refuse that version (ErrUnknownTarget). It returns the
// new targets.json; ErrUnknownTarget if the version is not there.
func RemoveTarget(dir, name, version string, expires time.Duration) ([]byte, error) {
	return removeTarget(dir, name, version, expires, time.Now())
}

func removeTarget(dir, name, version string, expires time.Duration, now time.Time) ([]byte, error) {
	return editTargets(dir, name, version, expires, now, func(t *metadata.TargetsType, path string) error {
		if _, ok := t.Targets[path]; !ok {
			return fmt.Errorf("%w: %s %s is not in %s", ErrUnknownTarget, name, version, filepath.Join(dir, "targets.json"))
		}
		delete(t.Targets, path)
		return nil
	})
}

// editTargets loads dir's targets.json, lets edit change it, and signs and
// writes the next version. Nothing is written when edit fails.
func editTargets(dir, name, version string, expires time.Duration, now time.Time, edit func(t *metadata.TargetsType, path string) error) ([]byte, error) {
	if err := CheckName(name, version); err != nil {
		return nil, err
	}
	if expires < 0 {
		return nil, fmt.Errorf("%w: negative expiry %s", ErrInvalid, expires)
	}
	if expires == 0 {
		expires = DefaultTargetsExpiry
	}
	root, err := loadRoot(dir)
	if err != nil {
		return nil, err
	}
	signers, err := roleSigners(dir, root, metadata.TARGETS)
	if err != nil {
		return nil, err
	}
	tb, err := os.ReadFile(filepath.Join(dir, "targets.json"))
	if err != nil {
		return nil, err
	}
	targets, err := parseTargets(tb)
	if err != nil {
		return nil, err
	}
	if err := edit(&targets.Signed, TargetPath(name, version)); err != nil {
		return nil, err
	}
	targets.Signed.Version++
	targets.Signed.Expires = now.Add(expires).UTC().Truncate(time.Second)
	out, err := sign(targets, signers...)
	if err != nil {
		return nil, err
	}
	if err := keys.WriteFileAtomic(filepath.Join(dir, "targets.json"), out, 0o644); err != nil {
		return nil, err
	}
	return out, nil
}

// targetFile streams the file at path through sha256 and sha512.
func targetFile(path string) (*metadata.TargetFiles, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	h256, h512 := sha256.New(), sha512.New()
	n, err := io.Copy(io.MultiWriter(h256, h512), f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	tf := metadata.TargetFile()
	tf.Length = n
	tf.Hashes["sha256"] = h256.Sum(nil)
	tf.Hashes["sha512"] = h512.Sum(nil)
	return tf, nil
}

// Rotation says what RotateRoot changes.
type Rotation struct {
	// NewRootKey replaces the root key by a new one. The new root is
	// signed by the old and the new key, so devices that trust the old
	// root accept it.
	NewRootKey bool
	// NewTargetsKey replaces the targets key by a new one and re-signs
	// targets.json with it (upload it together with the new root).
	NewTargetsKey bool
	// Online replaces the cloud's snapshot and timestamp keys; nil keeps
	// them.
	Online *OnlineKeys
	// Expires is the new root's lifetime. Defaults to DefaultRootExpiry.
	Expires time.Duration
}

// RotateRoot writes the next version of dir's root (N.root.json and
// root.json) with the changes of r; with a zero Rotation it only renews the
// root's expiry. It returns the new root.json. Upload it to the cloud (with
// targets.json when NewTargetsKey is set): devices fetch every N.root.json
// in turn.
func RotateRoot(dir string, r Rotation) ([]byte, error) {
	return rotateRoot(dir, r, time.Now())
}

func rotateRoot(dir string, r Rotation, now time.Time) ([]byte, error) {
	if r.Expires < 0 {
		return nil, fmt.Errorf("%w: negative expiry %s", ErrInvalid, r.Expires)
	}
	if r.Expires == 0 {
		r.Expires = DefaultRootExpiry
	}
	old, err := loadRoot(dir)
	if err != nil {
		return nil, err
	}
	oldSigners, err := roleSigners(dir, old, metadata.ROOT)
	if err != nil {
		return nil, err
	}
	next, err := parseRoot(mustBytes(old))
	if err != nil {
		return nil, err
	}
	next.Signed.Version++
	next.Signed.Expires = now.Add(r.Expires).UTC().Truncate(time.Second)

	// Make the new keys' TUF entries first; nothing is written until all
	// of them are valid.
	replace := map[string]*metadata.Key{}
	if r.Online != nil {
		snap, _, err := tufKey(r.Online.Snapshot)
		if err != nil {
			return nil, fmt.Errorf("snapshot key: %w", err)
		}
		ts, _, err := tufKey(r.Online.Timestamp)
		if err != nil {
			return nil, fmt.Errorf("timestamp key: %w", err)
		}
		replace[metadata.SNAPSHOT], replace[metadata.TIMESTAMP] = snap, ts
	}
	var newRoot, newTargets *signer
	if r.NewRootKey {
		if newRoot, err = newKey(dir, metadata.ROOT); err != nil {
			return nil, err
		}
		replace[metadata.ROOT] = newRoot.key
	}
	if r.NewTargetsKey {
		if newTargets, err = newKey(dir, metadata.TARGETS); err != nil {
			return nil, err
		}
		replace[metadata.TARGETS] = newTargets.key
	}
	for role, key := range replace {
		for _, id := range slices.Clone(next.Signed.Roles[role].KeyIDs) {
			if err := next.Signed.RevokeKey(id, role); err != nil {
				return nil, err
			}
		}
		if err := next.Signed.AddKey(key, role); err != nil {
			return nil, err
		}
	}
	signers := oldSigners
	if newRoot != nil {
		signers = append(signers, newRoot)
	}
	rootJSON, err := sign(next, signers...)
	if err != nil {
		return nil, err
	}
	// What devices will check: the old root's threshold, and the new one's.
	if err := old.VerifyDelegate(metadata.ROOT, next); err != nil {
		return nil, classify(err)
	}
	if err := next.VerifyDelegate(metadata.ROOT, next); err != nil {
		return nil, classify(err)
	}
	var targetsJSON []byte
	if newTargets != nil {
		tb, err := os.ReadFile(filepath.Join(dir, "targets.json"))
		if err != nil {
			return nil, err
		}
		targets, err := parseTargets(tb)
		if err != nil {
			return nil, err
		}
		targets.Signed.Version++
		if targetsJSON, err = sign(targets, newTargets); err != nil {
			return nil, err
		}
	}
	if err := keys.WriteFileAtomic(filepath.Join(dir, rootFileName(next.Signed.Version)), rootJSON, 0o644); err != nil {
		return nil, err
	}
	if err := keys.WriteFileAtomic(filepath.Join(dir, "root.json"), rootJSON, 0o644); err != nil {
		return nil, err
	}
	if targetsJSON != nil {
		if err := keys.WriteFileAtomic(filepath.Join(dir, "targets.json"), targetsJSON, 0o644); err != nil {
			return nil, err
		}
	}
	return rootJSON, nil
}

func mustBytes(m *metadata.Metadata[metadata.RootType]) []byte {
	b, err := m.ToBytes(false)
	if err != nil {
		panic(err) // it was just parsed from bytes
	}
	return b
}

func loadRoot(dir string) (*metadata.Metadata[metadata.RootType], error) {
	b, err := os.ReadFile(filepath.Join(dir, "root.json"))
	if err != nil {
		return nil, err
	}
	return parseRoot(b)
}

// roleSigners loads the private keys of dir that root names for role, and
// checks there are at least its threshold of them.
func roleSigners(dir string, root *metadata.Metadata[metadata.RootType], role string) ([]*signer, error) {
	r := root.Signed.Roles[role]
	if r == nil {
		return nil, fmt.Errorf("%w: root has no %s role", ErrInvalid, role)
	}
	files, err := filepath.Glob(filepath.Join(dir, keysDir, role+"-*.key"))
	if err != nil {
		return nil, err
	}
	var out []*signer
	for _, f := range files {
		k, err := keys.LoadPrivate(f)
		if err != nil {
			return nil, err
		}
		s, err := newSigner(k)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if slices.Contains(r.KeyIDs, s.id) {
			out = append(out, s)
		}
	}
	if len(out) < r.Threshold {
		return nil, fmt.Errorf("%w: %s needs %d key(s) of %s, found %d", ErrNoKey, role, r.Threshold, filepath.Join(dir, keysDir), len(out))
	}
	return out, nil
}

// newKey generates an Ed25519 key for role and saves it as
// keys/<role>-<keyid>.key (0600), refusing to replace any file.
func newKey(dir, role string) (*signer, error) {
	k, err := keys.Generate(keys.AlgEd25519, 0)
	if err != nil {
		return nil, err
	}
	s, err := newSigner(k)
	if err != nil {
		return nil, err
	}
	if err := saveNew(filepath.Join(dir, keysDir, role+"-"+s.id[:16]+".key"), k); err != nil {
		return nil, err
	}
	return s, nil
}

// saveNew writes key as PKCS#8 PEM, 0600, to path, which must not exist:
// through a synced temporary file and a hard link, so it is never
// half-written and never replaces a file.
func saveNew(path string, key crypto.Signer) error {
	data, err := keys.MarshalPrivatePEM(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".key-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s exists", ErrKeyExists, path)
		}
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// PublicKeyFile reads an Ed25519 public key from a PEM (PUBLIC KEY) file,
// as OpenOnline writes them.
func PublicKeyFile(path string) (crypto.PublicKey, error) {
	pub, err := keys.LoadPublic(path)
	if err != nil {
		return nil, err
	}
	if _, _, err := tufKey(pub); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}
