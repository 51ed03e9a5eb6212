package postgresexporter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"
)

// writeStats is what one push did.
type writeStats struct {
	inserted, duplicates, deadLettered int64
	ledgered                           int64 // call entries appended to the ledger
}

// errMissingPartition marks an insert that found no partition for a row: a
// partition was dropped under us (by another collector's retention, or by
// hand). Retrying after the cache is cleared recreates it.
var errMissingPartition = errors.New("no partition for a row")

// write stores rows and dead letters in one transaction, with the ledger
// entries of the rows: all of a batch lands, or none of it and the error
// says whether to retry.
func (e *pgExporter) write(ctx context.Context, rows []spanRow, dead []deadLetter) (writeStats, error) {
	if len(rows) == 0 && len(dead) == 0 {
		return writeStats{}, nil
	}
	deadRows, err := deadRowsOf(dead)
	if err != nil {
		return writeStats{}, err
	}
	st, err := e.writeBulk(ctx, rows, deadRows)
	if !isDataError(err) {
		return st, err
	}
	// Some row broke a rule the checks before could not see (a jsonb escape
	// Postgres refuses, an index row too big...): find it by inserting rows
	// one by one, so the good ones land and the bad ones are dead letters.
	e.logger.Warn("bulk insert refused by Postgres, inserting spans one by one",
		zap.Int("spans", len(rows)), zap.Error(err))
	return e.writeOneByOne(ctx, rows, deadRows)
}

// writeBulk sends one statement per table, pipelined in one round trip.
func (e *pgExporter) writeBulk(ctx context.Context, rows []spanRow, dead []deadRow) (writeStats, error) {
	var events []eventRow
	var content []contentRow
	for i := range rows {
		events = append(events, rows[i].events...)
		if rows[i].content != nil {
			content = append(content, *rows[i].content)
		}
	}
	st := writeStats{deadLettered: int64(len(dead))}
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		if len(rows) > 0 {
			b.Queue(insertSpans.sql, insertSpans.args(rows)...).Exec(func(ct pgconn.CommandTag) error {
				st.inserted = ct.RowsAffected()
				return nil
			})
		}
		if len(events) > 0 {
			b.Queue(insertEvents.sql, insertEvents.args(events)...)
		}
		if len(content) > 0 {
			b.Queue(insertContent.sql, insertContent.args(content)...)
		}
		if len(dead) > 0 {
			b.Queue(insertDead.sql, insertDead.args(dead)...)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		var err error
		st.ledgered, err = e.appendLedger(ctx, tx, rows)
		return err
	})
	st.duplicates = int64(len(rows)) - st.inserted
	return st, classify(err)
}

// writeOneByOne inserts each span (with its events and content) under its
// own savepoint; a span Postgres refuses for its data joins the dead letters.
func (e *pgExporter) writeOneByOne(ctx context.Context, rows []spanRow, dead []deadRow) (writeStats, error) {
	var st writeStats
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		st = writeStats{}
		stored := make([]spanRow, 0, len(rows)) // those not dead-lettered
		for i := range rows {
			r := &rows[i]
			var inserted int64
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				b := &pgx.Batch{}
				b.Queue(insertSpans.sql, insertSpans.args(rows[i:i+1])...).Exec(func(ct pgconn.CommandTag) error {
					inserted = ct.RowsAffected()
					return nil
				})
				if len(r.events) > 0 {
					b.Queue(insertEvents.sql, insertEvents.args(r.events)...)
				}
				if r.content != nil {
					b.Queue(insertContent.sql, insertContent.args([]contentRow{*r.content})...)
				}
				return sp.SendBatch(ctx, b).Close()
			})
			if err = classify(err); isDataError(err) {
				d, derr := deadRowOf(deadLetter{reason: "refused by Postgres: " + pgMessage(err), src: r.src})
				if derr != nil {
					return derr
				}
				dead = append(dead, d)
				continue
			}
			if err != nil {
				return err
			}
			st.inserted += inserted
			st.duplicates += 1 - inserted
			stored = append(stored, *r)
		}
		if len(dead) > 0 {
			if _, err := tx.Exec(ctx, insertDead.sql, insertDead.args(dead)...); err != nil {
				return err
			}
		}
		st.deadLettered = int64(len(dead))
		var err error
		st.ledgered, err = e.appendLedger(ctx, tx, stored)
		return err
	})
	if isDataError(err) {
		// Only the dead-letter insert is left to fail on data, and it would
		// fail the same way forever.
		return st, consumererror.NewPermanent(fmt.Errorf("insert dead letters: %w", err))
	}
	return st, err
}

func deadRowsOf(dead []deadLetter) ([]deadRow, error) {
	out := make([]deadRow, 0, len(dead))
	for _, d := range dead {
		r, err := deadRowOf(d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// deadRowOf keeps the span whole in payload; the text columns only help find
// it, so they are made storable whatever the span held.
func deadRowOf(d deadLetter) (deadRow, error) {
	payload, err := d.src.payload()
	if err != nil {
		// pdata marshals anything it holds; failing here is a bug, not data.
		return deadRow{}, consumererror.NewPermanent(fmt.Errorf("encode dead letter: %w", err))
	}
	return deadRow{
		reason:   sanitize(d.reason, 4096),
		traceID:  d.src.span.TraceID().String(),
		spanID:   d.src.span.SpanID().String(),
		spanName: sanitize(d.src.span.Name(), 1024),
		payload:  payload,
	}, nil
}

// isDataError reports errors caused by the rows themselves: SQLSTATE class
// 22 (data exception), 23 (integrity constraint) and 54 (program limit
// exceeded). Retrying those can never succeed. The ledger's errors are
// never the spans' fault (its entries are checked before they are sent).
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.Is(err, errMissingPartition) || errors.Is(err, errLedger) || !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}

// classify turns the one class-23 error that is not about the data (a row
// with no partition, SQLSTATE 23514 "no partition of relation ... found for
// row") into errMissingPartition, which is retried.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" && strings.HasPrefix(pgErr.Message, "no partition of relation") {
		return fmt.Errorf("%w: %w", errMissingPartition, err)
	}
	return err
}

func pgMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	}
	return err.Error()
}
