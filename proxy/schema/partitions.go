package schema

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PartitionedTables are the tables partitioned by UTC day on a span's start
// time. Each day D has a partition <table>_YYYYMMDD holding [D, D+24h).
var PartitionedTables = []string{"spans", "span_events", "span_content"}

const dayLayout = "20060102"

const dropLockTimeout = "5s"

// Day returns the UTC day holding t, as the start of that day.
func Day(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour)
}

// PartitionName is the partition of table for the day holding t.
func PartitionName(table string, t time.Time) string {
	return table + "_" + Day(t).Format(dayLayout)
}

// EnsurePartitions creates the partitions of every partitioned table for each
// UTC day from the day holding from to the day holding to, both included. It
// is idempotent and safe to run from several processes at once.
func EnsurePartitions(ctx context.Context, db DB, from, to time.Time) error {
	first, last := Day(from), Day(to)
	if last.Before(first) {
		return nil
	}
	var b strings.Builder
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		lo, hi := d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)
		for _, t := range PartitionedTables {
			fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS loom.%s PARTITION OF loom.%s FOR VALUES FROM ('%s') TO ('%s');\n",
				PartitionName(t, d), t, lo, hi)
		}
	}
	return locked(ctx, db, b.String())
}

// DropPartitionsBefore drops every daily partition that lies entirely before
// t (its day ends at or before t): retention. Dropping a partition is instant
// and leaves no bloat, unlike DELETE. It returns the partitions it dropped.
//
// Dead letters get the same retention: those received before t are deleted
// in the same transaction. They hold whole spans, captured prompts and
// completions included, so keeping them past the spans' retention would
// keep exactly what retention is there to remove.
//
// DROP locks the parent table exclusively, and a DROP waiting behind a long
// dashboard query would queue every insert behind it: so it gives up after
// dropLockTimeout, with an error, to be tried again later.
func DropPartitionsBefore(ctx context.Context, db DB, t time.Time) ([]string, error) {
	days, err := partitions(ctx, db)
	if err != nil {
		return nil, err
	}
	var dropped []string
	var b strings.Builder
	b.WriteString("SET LOCAL lock_timeout = '" + dropLockTimeout + "';\n")
	for name, day := range days {
		if !day.AddDate(0, 0, 1).After(t) {
			dropped = append(dropped, name)
			fmt.Fprintf(&b, "DROP TABLE IF EXISTS loom.%s;\n", name)
		}
	}
	fmt.Fprintf(&b, "DELETE FROM loom.dead_letters WHERE received_at < '%s'::timestamptz;\n", t.UTC().Format(time.RFC3339Nano))
	if err := locked(ctx, db, b.String()); err != nil {
		return nil, err
	}
	return dropped, nil
}

// Partitions returns the days for which the given table has a partition, as
// the start of each UTC day.
func Partitions(ctx context.Context, db DB, table string) ([]time.Time, error) {
	all, err := partitions(ctx, db)
	if err != nil {
		return nil, err
	}
	var days []time.Time
	for name, day := range all {
		if strings.TrimSuffix(name, "_"+day.Format(dayLayout)) == table {
			days = append(days, day)
		}
	}
	return days, nil
}

// partitions lists the daily partitions of the partitioned tables, by name.
// Names that do not end in a day (made by hand) are left alone.
func partitions(ctx context.Context, db DB) (map[string]time.Time, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	rows, err := tx.Query(ctx, `SELECT c.relname, p.relname
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
JOIN pg_namespace n ON n.oid = p.relnamespace
WHERE n.nspname = 'loom' AND p.relname = ANY($1)`, PartitionedTables)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	var name, parent string
	_, err = pgx.ForEachRow(rows, []any{&name, &parent}, func() error {
		suffix, ok := strings.CutPrefix(name, parent+"_")
		if day, err := time.Parse(dayLayout, suffix); ok && err == nil {
			out[name] = day
		}
		return nil
	})
	return out, err
}

// locked runs sql (several statements, no arguments) in one transaction
// holding the schema lock.
func locked(ctx context.Context, db DB, sql string) error {
	return inLock(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql)
		return err
	})
}

// inLock runs f in a transaction that holds the schema lock, and commits
// if f succeeds.
func inLock(ctx context.Context, db DB, f func(tx pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
