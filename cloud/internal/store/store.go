// Package store keeps Bosun's durable state in PostgreSQL through pgx/v5.
//
// It exists so that SQL lives in one place: the fleet coordinator calls these
// methods and never writes a query of its own. Every method takes ctx first,
// is safe for concurrent use, and returns ErrNotFound (never pgx.ErrNoRows)
// when a row does not exist.
//
// Migrations are plain SQL files embedded from migrations/NNN_name.sql and run
// by a runner of about fifty lines (migrate.go) rather than a migration
// library: the schema has a handful of forward-only files, and what we need —
// each file in its own transaction, recorded in schema_migrations, the whole
// run under a PostgreSQL advisory lock so several replicas can start at once —
// is less code than configuring a dependency.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	// ErrNotFound is returned when the row asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is returned when a unique constraint would be violated
	// (e.g. a second user with the same email).
	ErrConflict = errors.New("store: conflict")
)

// defaultMaxConns is the pool size when the database URL sets none: three
// replicas stay well under PostgreSQL's default max_connections (100).
const defaultMaxConns = 16

// Store is a PostgreSQL connection pool with Bosun's queries.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url (a postgres:// URL or DSN) and checks
// the connection. Close releases it.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default, max(4, CPUs), serialises a reconnect storm of
		// thousands of devices behind 4 commits at a time on a small
		// machine; PostgreSQL commits concurrent transactions together
		// (one WAL flush), so more connections mean more sessions started
		// per flush. pool_max_conns in the URL overrides it.
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool, waiting for acquired connections to be released.
// It is safe to call twice.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the pool for tests and for packages added later that need
// their own tables (e.g. web sessions); prefer adding a method here.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// notFound translates pgx.ErrNoRows into ErrNotFound and unique violations
// into ErrConflict, leaving other errors untouched.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pe.ConstraintName)
	}
	return err
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

func ptrTime(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
