// Package testpg gives each test its own PostgreSQL database.
//
// Tests share one throwaway cluster, the one scripts/test.sh starts and names in
// BOSUN_TEST_DATABASE_URL; every call to URL creates a fresh database in it, so
// tests (and test packages running in parallel) never see each other's rows and
// need no cleanup of their own. Without the variable the tests skip, except under
// CI=true, where a missing database is a failure.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable holding the URL of the test cluster,
// e.g. postgres://bosun@127.0.0.1:5432/postgres?sslmode=disable. Its database is
// only used to create and drop the per-test databases.
const EnvURL = "BOSUN_TEST_DATABASE_URL"

// opTimeout bounds each CREATE or DROP DATABASE.
const opTimeout = 30 * time.Second

// BaseURL returns the URL of the test cluster from BOSUN_TEST_DATABASE_URL. When
// it is unset the test is skipped, or fails when CI=true.
func BaseURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		msg := EnvURL + " is not set: this test needs PostgreSQL; run ./scripts/test.sh, " +
			"or point " + EnvURL + " at a disposable cluster"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI=true: a missing database is a failure)")
		}
		tb.Skip(msg)
	}
	return base
}

// URL creates a new, empty database in the test cluster and returns a URL to
// it. The database is dropped, with FORCE, when the test and its subtests end.
func URL(tb testing.TB) string {
	tb.Helper()
	base := BaseURL(tb)
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("testpg: parsing %s: %v", EnvURL, err)
	}
	name := dbName(tb.Name())

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := exec(ctx, base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("testpg: creating database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		err := exec(ctx, base, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		if err != nil {
			tb.Errorf("testpg: dropping database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	return u.String()
}

// exec runs one statement on a short-lived connection to the cluster's
// maintenance database. CREATE/DROP DATABASE cannot run inside a transaction,
// so no pool and no transaction.
func exec(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// dbName makes a database name that says which test made it (for whoever
// inspects a leftover one) and is unique: test_<test name>_<random hex>,
// within PostgreSQL's 63-byte identifier limit.
func dbName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	slug := b.String()
	if len(slug) > 40 {
		slug = slug[:40]
	}
	return "test_" + slug + "_" + randomHex(6)
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(buf)
}
