package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/cloud/internal/testpg"
)

func open(t *testing.T) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, testpg.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// TestMigrateConcurrently: replicas starting together migrate once between
// them, thanks to the advisory lock.
func TestMigrateConcurrently(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	applied := make([][]string, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = st.Migrate(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	ms, _ := store.Migrations()
	if total != len(ms) {
		t.Fatalf("applied %d migrations in total, want %d", total, len(ms))
	}
	if again, err := st.Migrate(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v, %v", again, err)
	}
	if _, err := st.OrgByName(ctx, "default"); err != nil {
		t.Fatalf("default org: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"device": func() error { _, err := st.GetDevice(ctx, "nope"); return err }(),
		"call":   func() error { _, err := st.GetCall(ctx, "00000000-0000-4000-8000-000000000000"); return err }(),
		"bad id": func() error { _, err := st.GetCall(ctx, "not-a-uuid"); return err }(),
		"user":   func() error { _, err := st.UserByEmail(ctx, "x@y"); return err }(),
		"accept": func() error { _, err := st.Accept(ctx, store.AcceptInput{DeviceID: "nope"}); return err }(),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
}

func TestMigrationNames(t *testing.T) {
	ms, err := store.Migrations()
	if err != nil || len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("migrations = %v, %v", ms, err)
	}
}
