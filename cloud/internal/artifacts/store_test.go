package artifacts

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"slices"
	"testing"
	"time"
)

func TestReceiveLimit(t *testing.T) {
	d, err := OpenDisk(t.TempDir(), 100)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Repeat([]byte{'a'}, 100)
	u, err := d.Receive(bytes.NewReader(at))
	if err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if u.Length != 100 || u.SHA256 != sha256.Sum256(at) {
		t.Fatalf("got length %d sha %x", u.Length, u.SHA256)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	f, err := d.Open(u.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, at) {
		t.Fatal("stored bytes differ")
	}
	before, _ := d.Files()
	if _, err := d.Receive(bytes.NewReader(append(at, 'b'))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("beyond the limit: got %v, want ErrTooLarge", err)
	}
	after, _ := d.Files()
	if !slices.Equal(before, after) {
		t.Fatalf("a refused upload left files: %v -> %v", before, after)
	}
}

func TestSameBytesOnce(t *testing.T) {
	d, err := OpenDisk(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxSize() != DefaultMaxSize {
		t.Fatalf("default max %d", d.MaxSize())
	}
	for i := 0; i < 3; i++ {
		u, err := d.Receive(bytes.NewReader([]byte("same bytes")))
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := d.Files()
	if len(files) != 1 {
		t.Fatalf("files %v, want one", files)
	}
	sha := sha256.Sum256([]byte("same bytes"))
	if err := d.Remove(sha); err != nil || d.Has(sha) {
		t.Fatalf("remove: %v, has %v", err, d.Has(sha))
	}
	if err := d.Remove(sha); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if _, err := d.Open(sha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open removed: %v", err)
	}
}

func TestDiscardAndStaleTemp(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDisk(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	u, err := d.Receive(bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	u.Discard()
	if files, _ := d.Files(); len(files) != 0 {
		t.Fatalf("discard left %v", files)
	}
	stale := d.Dir() + "/" + tmpPrefix + "old"
	fresh := d.Dir() + "/" + tmpPrefix + "new"
	os.WriteFile(stale, []byte("x"), 0o600)
	os.WriteFile(fresh, []byte("x"), 0o600)
	old := mustTime(t)
	os.Chtimes(stale, old, old)
	if _, err := OpenDisk(dir, 0); err != nil {
		t.Fatal(err)
	}
	files, _ := d.Files()
	if !slices.Equal(files, []string{tmpPrefix + "new"}) {
		t.Fatalf("after reopening: %v, want only the fresh temp file", files)
	}
}

func mustTime(t *testing.T) (old time.Time) {
	t.Helper()
	return time.Now().Add(-25 * time.Hour)
}
