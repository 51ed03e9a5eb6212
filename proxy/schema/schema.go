// Package schema is Loom's Postgres schema ("loom") as a contract that the
// gateway (proxy/) and the collector (otelcol/) both import: the embedded,
// versioned migrations, the daily partitions of the span tables and their
// retention, the tenant reader role, and the one read on a tenant's behalf
// (ReadAsTenant). It must never import the gateway's or the collector's
// packages.
//
// Migrations are files migrations/NNNN_name.sql, applied in version order,
// each in its own transaction under an advisory lock, and recorded in
// loom.schema_migrations, so any number of processes may call Migrate at the
// same time. Migrate runs only where an operator asked for it (`loom migrate`,
// `loom serve -migrate`, the exporter's schema_migrations); the tenant store
// only calls Check. A migration, once released, must never be edited: add a
// new one.
// Nothing here ever deletes data except DropPartitionsBefore, which is
// retention and says so in its name.
package schema

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is what the schema functions need from a connection: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx all satisfy it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

var (
	_ DB = (*pgx.Conn)(nil)
	_ DB = (*pgxpool.Pool)(nil)
	_ DB = (pgx.Tx)(nil)
)

// lockKey is the pg_advisory_xact_lock key every schema change takes, so two
// processes never migrate or create partitions at the same time (concurrent
// CREATE ... IF NOT EXISTS can still fail on the catalog's unique indexes).
const lockKey int64 = 0x6c6f6f6d_73636d61 // "loomscma"

// Migration is one embedded schema change.
type Migration struct {
	Version int
	Name    string // the file name without the number and extension
	SQL     string
}

// ErrBadMigrationName is returned for an embedded file not named NNNN_name.sql.
var ErrBadMigrationName = errors.New("migration file must be named NNNN_name.sql")

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".sql")
		num, name, ok2 := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || !ok2 || err != nil || v <= 0 || len(num) != 4 || name == "" {
			return nil, fmt.Errorf("%s: %w", e.Name(), ErrBadMigrationName)
		}
		sql, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(sql)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migration version %04d used twice", out[i].Version)
		}
	}
	return out, nil
}

// Migrate applies every embedded migration not yet recorded in
// loom.schema_migrations, oldest first. It is a no-op when all are applied.
func Migrate(ctx context.Context, db DB) error {
	all, err := Migrations()
	if err != nil {
		return err
	}
	for _, m := range all {
		if err := apply(ctx, db, m); err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// ErrNotMigrated means the database lacks some of the embedded migrations:
// nobody has run Migrate on it (`loom migrate`, `loom serve -migrate`, or
// the exporter's schema_migrations) since this build's schema.
var ErrNotMigrated = errors.New("database schema is not up to date")

// Check returns an error wrapping ErrNotMigrated, naming the missing
// migrations, unless every embedded migration is recorded in
// loom.schema_migrations. It changes nothing: the processes that only use
// the schema call it, so that they fail at start, saying why, rather than
// on their first query. A database newer than this build passes.
func Check(ctx context.Context, db DB) error {
	all, err := Migrations()
	if err != nil {
		return err
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass('loom.schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return err
	}
	var applied []int
	if exists {
		rows, _ := tx.Query(ctx, "SELECT version FROM loom.schema_migrations")
		if applied, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
			return err
		}
	}
	var missing []string
	for _, m := range all {
		if !slices.Contains(applied, m.Version) {
			missing = append(missing, fmt.Sprintf("%04d_%s", m.Version, m.Name))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: migrations %s not applied", ErrNotMigrated, strings.Join(missing, ", "))
	}
	return nil
}

// apply runs one migration in its own transaction unless it is already
// recorded. The check happens under the lock, so of two processes racing, the
// second sees the first one's row and does nothing.
func apply(ctx context.Context, db DB, m Migration) error {
	return inLock(ctx, db, func(tx pgx.Tx) error { return applyLocked(ctx, tx, m) })
}

func applyLocked(ctx context.Context, tx pgx.Tx, m Migration) error {
	const bookkeeping = `CREATE SCHEMA IF NOT EXISTS loom;
CREATE TABLE IF NOT EXISTS loom.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`
	if _, err := tx.Exec(ctx, bookkeeping); err != nil {
		return err
	}
	var done bool
	err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM loom.schema_migrations WHERE version = $1)", m.Version).Scan(&done)
	if err != nil || done {
		return err
	}
	// No arguments: pgx sends this with the simple protocol, which allows
	// the several statements a migration file holds.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO loom.schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
	return err
}
