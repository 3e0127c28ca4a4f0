package testpg_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bosunhq/bosun/cloud/internal/testpg"
)

func connect(tb testing.TB, connURL string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		tb.Fatalf("connecting to %s: %v", connURL, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func dbExists(tb testing.TB, name string) bool {
	tb.Helper()
	conn := connect(tb, testpg.BaseURL(tb))
	var exists bool
	err := conn.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		tb.Fatalf("looking up database %s: %v", name, err)
	}
	return exists
}

func TestURLGivesAnIsolatedDatabase(t *testing.T) {
	ctx := context.Background()
	first := connect(t, testpg.URL(t))
	second := connect(t, testpg.URL(t))

	if _, err := first.Exec(ctx, "CREATE TABLE devices (id text PRIMARY KEY)"); err != nil {
		t.Fatalf("creating a table: %v", err)
	}
	if _, err := first.Exec(ctx, "INSERT INTO devices VALUES ('dev-1')"); err != nil {
		t.Fatalf("inserting: %v", err)
	}
	var n int
	if err := first.QueryRow(ctx, "SELECT count(*) FROM devices").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count in the first database = %d, %v; want 1, nil", n, err)
	}

	var db1, db2 string
	_ = first.QueryRow(ctx, "SELECT current_database()").Scan(&db1)
	_ = second.QueryRow(ctx, "SELECT current_database()").Scan(&db2)
	if db1 == db2 || !strings.HasPrefix(db1, "test_") {
		t.Fatalf("databases %q and %q: want two distinct test_ databases", db1, db2)
	}

	var table *string
	if err := second.QueryRow(ctx, "SELECT to_regclass('public.devices')::text").Scan(&table); err != nil {
		t.Fatalf("looking up the table in the second database: %v", err)
	}
	if table != nil {
		t.Fatalf("the second database sees table %q of the first one", *table)
	}
}

func TestURLDropsTheDatabaseAfterTheTest(t *testing.T) {
	testpg.BaseURL(t) // skip (or fail under CI) here, not in the subtest
	var name string
	t.Run("uses a database", func(t *testing.T) {
		u, err := url.Parse(testpg.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimPrefix(u.Path, "/")
		// An open connection must not stop the drop (WITH (FORCE)): leave one.
		conn := connect(t, u.String())
		if _, err := conn.Exec(context.Background(), "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		if !dbExists(t, name) {
			t.Fatalf("database %s does not exist during the test", name)
		}
	})
	if name == "" {
		t.Fatal("subtest did not run")
	}
	if dbExists(t, name) {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}
