package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// TestArtifactRows: a taken (org, name, version) is ErrConflict and calls
// unplace only when no row names the bytes; deleting calls remove with the
// last row only; the download key is made once.
func TestArtifactRows(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	org, err := st.OrgByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("x"))
	row := store.Artifact{OrgID: org.ID, Name: "hello", Version: "1.0.0", SHA256: sum[:], Length: 1, UploadedBy: "t"}
	var placed, unplaced, removed int
	place := func() error { placed++; return nil }
	unplace := func() error { unplaced++; return nil }
	a1, err := st.InsertArtifact(ctx, row, place, unplace)
	if err != nil || placed != 1 || unplaced != 0 {
		t.Fatalf("insert: %v placed %d unplaced %d", err, placed, unplaced)
	}
	// Same version again: conflict; a row names the bytes, so they stay.
	if _, err := st.InsertArtifact(ctx, row, place, unplace); !errors.Is(err, store.ErrConflict) || unplaced != 0 {
		t.Fatalf("duplicate: %v unplaced %d", err, unplaced)
	}
	// Other bytes under a taken version: conflict, and they go.
	other := sha256.Sum256([]byte("y"))
	dup := row
	dup.SHA256 = other[:]
	if _, err := st.InsertArtifact(ctx, dup, place, unplace); !errors.Is(err, store.ErrConflict) || unplaced != 1 {
		t.Fatalf("duplicate with other bytes: %v unplaced %d", err, unplaced)
	}
	// place failing stores nothing.
	v2 := row
	v2.Version = "2.0.0"
	if _, err := st.InsertArtifact(ctx, v2, func() error { return errors.New("disk full") }, unplace); err == nil {
		t.Fatal("a failed place stored a row")
	}
	if _, err := st.ArtifactByVersion(ctx, org.ID, "hello", "2.0.0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a failed place: %v", err)
	}
	a2, err := st.InsertArtifact(ctx, v2, place, unplace)
	if err != nil {
		t.Fatal(err)
	}
	remove := func([]byte) error { removed++; return nil }
	if gone, err := st.DeleteArtifact(ctx, a1.ID, remove); err != nil || gone || removed != 0 {
		t.Fatalf("delete first: %v %v %d", err, gone, removed)
	}
	// A failing remove keeps the row.
	if _, err := st.DeleteArtifact(ctx, a2.ID, func([]byte) error { return errors.New("io") }); err == nil {
		t.Fatal("a failed remove deleted the row")
	}
	if _, err := st.ArtifactByID(ctx, a2.ID); err != nil {
		t.Fatalf("row after a failed remove: %v", err)
	}
	if gone, err := st.DeleteArtifact(ctx, a2.ID, remove); err != nil || !gone || removed != 1 {
		t.Fatalf("delete last: %v %v %d", err, gone, removed)
	}
	if _, err := st.DeleteArtifact(ctx, a2.ID, remove); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	k1, err := st.DownloadKey(ctx, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := st.DownloadKey(ctx, []byte("another key of thirty-two bytes!"))
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("download key changed: %v", err)
	}
}
