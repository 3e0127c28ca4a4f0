// Package artifacts keeps OTA artifact bytes on the cloud's disk,
// content-addressed: the bytes whose SHA-256 is HEX live in
// <data-dir>/artifacts/sha256/HEX, so the same bytes are stored once
// however many (name, version) rows name them. The rows themselves live in
// PostgreSQL (package store); package fleet ties the two together under a
// per-blob lock (see fleet/artifacts.go).
//
// An upload is streamed (never held whole in memory) into a temporary
// file in the same directory while it is hashed, bounded by a size limit,
// synced, and renamed to its final name only when the caller commits it:
// a refused upload leaves nothing behind. The package also holds the
// semantic version rules of artifact versions (semver.go).
package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

// DefaultMaxSize is the size limit of one artifact unless Options say
// otherwise: 1 GiB.
const DefaultMaxSize int64 = 1 << 30

// ErrTooLarge is returned by Receive for a body longer than the limit.
var ErrTooLarge = errors.New("artifacts: artifact larger than the size limit")

// ErrNotFound is returned by Open for bytes the store does not hold.
var ErrNotFound = errors.New("artifacts: no such blob")

const tmpPrefix = ".upload-"

// Disk is the content-addressed store under a data directory.
type Disk struct {
	dir string // <data-dir>/artifacts/sha256
	max int64
}

// OpenDisk makes (0700) and opens <dataDir>/artifacts/sha256. maxSize
// bounds each artifact; 0 or less means DefaultMaxSize. Temporary files
// that an upload of a crashed process left there more than a day ago are
// removed.
func OpenDisk(dataDir string, maxSize int64) (*Disk, error) {
	if dataDir == "" {
		return nil, errors.New("artifacts: a data directory is required")
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	dir := filepath.Join(dataDir, "artifacts", "sha256")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return &Disk{dir: dir, max: maxSize}, nil
}

// MaxSize is the size limit of one artifact in bytes (accepted at it,
// refused beyond it).
func (d *Disk) MaxSize() int64 { return d.max }

// Dir is the directory holding the blobs.
func (d *Disk) Dir() string { return d.dir }

// Path is where the bytes of sha live.
func (d *Disk) Path(sha [32]byte) string { return filepath.Join(d.dir, hex.EncodeToString(sha[:])) }

// Upload is a received artifact in its temporary file, not yet visible
// under its hash. Exactly one of Commit or Discard must follow.
type Upload struct {
	d      *Disk
	tmp    string
	SHA256 [32]byte
	Length int64
}

// Receive streams r into a temporary file while hashing it, syncs it and
// returns the Upload. A body of more than MaxSize bytes is ErrTooLarge;
// on any error the temporary file is gone.
func (d *Disk) Receive(r io.Reader) (*Upload, error) {
	f, err := os.CreateTemp(d.dir, tmpPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	u := &Upload{d: d, tmp: f.Name()}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, d.max+1))
	if err == nil && n > d.max {
		err = ErrTooLarge
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(u.tmp)
		return nil, err
	}
	u.Length = n
	copy(u.SHA256[:], h.Sum(nil))
	return u, nil
}

// Commit moves the upload to its final name (replacing a file of the same
// hash, hence of the same bytes, atomically) and syncs the directory.
func (u *Upload) Commit() error {
	if err := os.Rename(u.tmp, u.d.Path(u.SHA256)); err != nil {
		os.Remove(u.tmp)
		return fmt.Errorf("artifacts: %w", err)
	}
	return syncDir(u.d.dir)
}

// Discard removes the temporary file. Safe after Commit.
func (u *Upload) Discard() { os.Remove(u.tmp) }

// Open opens the bytes of sha for reading; missing is ErrNotFound.
func (d *Disk) Open(sha [32]byte) (*os.File, error) {
	f, err := os.Open(d.Path(sha))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// Has reports whether the store holds the bytes of sha.
func (d *Disk) Has(sha [32]byte) bool {
	_, err := os.Stat(d.Path(sha))
	return err == nil
}

// Remove deletes the bytes of sha; missing bytes are no error. A reader
// that opened them keeps reading them.
func (d *Disk) Remove(sha [32]byte) error {
	if err := os.Remove(d.Path(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("artifacts: %w", err)
	}
	return syncDir(d.dir)
}

// Files lists the names in the blob directory (temporary files included),
// for tests and checks.
func (d *Disk) Files() ([]string, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

// syncDir is keys.SyncDir with the package's error prefix.
func syncDir(dir string) error {
	if err := keys.SyncDir(dir); err != nil {
		return fmt.Errorf("artifacts: syncing %s: %w", dir, err)
	}
	return nil
}
