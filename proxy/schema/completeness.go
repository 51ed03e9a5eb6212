package schema

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run is what Postgres holds of one run of one Loom instance: how many calls
// it numbered, how many arrived, and whether it stopped cleanly.
type Run struct {
	InstanceID string    `json:"instance_id"`
	RunID      string    `json:"run_id"`
	StartedAt  time.Time `json:"started_at"` // the start marker's time, else the first call's
	// Closed is true when the run's stop marker arrived: Numbered is then
	// exact (the marker's loom.run.last_seq, or a higher number stored: a
	// straggler recorded after the marker). Otherwise the run crashed or is
	// still going, and Numbered is the highest sequence number stored.
	Closed   bool  `json:"closed"`
	Numbered int64 `json:"numbered"`
	Stored   int64 `json:"stored"` // distinct loom.seq with a SERVER span
	Gaps     int64 `json:"gaps"`   // Numbered - Stored
	// Missing are the absent ranges [from, to] of loom.seq (the first
	// maxMissingRanges of them).
	Missing [][2]int64 `json:"missing"`
	// LossBound and CommitInterval come from the start marker: a run that
	// crashed can have lost at most LossBound calls, those finished in its
	// last commit window, beyond Numbered (they were never numbered in a
	// row that arrived).
	LossBound             int64   `json:"loss_bound"`
	CommitIntervalSeconds float64 `json:"commit_interval_seconds"`
	HasStartMarker        bool    `json:"has_start_marker"`
}

// maxMissingRanges bounds the ranges listed per run: a run that lost every
// other call must not make an answer of millions of lines.
const maxMissingRanges = 100

// completenessSQL counts each run's SERVER spans and reads its markers. It
// reads rows from every day of the runs that have a row since $1, so a run
// that began before $1 is not reported with a gap at its head.
const completenessSQL = `
WITH runs AS (
  SELECT DISTINCT instance_id, coalesce(run_id, '') AS run_id
  FROM loom.spans
  WHERE start_time >= $1 AND instance_id IS NOT NULL
    AND (seq IS NOT NULL OR name = 'loom run')
), calls AS (
  SELECT s.instance_id, coalesce(s.run_id, '') AS run_id, count(DISTINCT s.seq) AS stored,
         max(s.seq) AS max_seq, min(s.start_time) AS first_call
  FROM loom.spans s JOIN runs r ON r.instance_id = s.instance_id AND r.run_id = coalesce(s.run_id, '')
  WHERE s.kind = 'server' AND s.seq IS NOT NULL
  GROUP BY 1, 2
), markers AS (
  SELECT s.instance_id, coalesce(s.run_id, '') AS run_id,
         min(s.start_time) FILTER (WHERE s.attributes->>'loom.run.event' = 'start') AS started_at,
         bool_or(s.attributes->>'loom.run.event' = 'stop') AS closed,
         max((s.attributes->>'loom.run.last_seq')::bigint) AS last_seq,
         max((s.attributes->>'loom.run.loss_bound')::bigint) AS loss_bound,
         max((s.attributes->>'loom.run.commit_interval')::float8) AS commit_interval
  FROM loom.spans s JOIN runs r ON r.instance_id = s.instance_id AND r.run_id = coalesce(s.run_id, '')
  WHERE s.kind = 'internal' AND s.name = 'loom run'
  GROUP BY 1, 2
)
SELECT coalesce(c.instance_id, m.instance_id), coalesce(c.run_id, m.run_id),
       coalesce(m.started_at, c.first_call), m.started_at IS NOT NULL,
       coalesce(m.closed, false), coalesce(greatest(m.last_seq, c.max_seq), 0), coalesce(c.stored, 0),
       coalesce(m.loss_bound, 0), coalesce(m.commit_interval, 0)
FROM calls c FULL JOIN markers m ON m.instance_id = c.instance_id AND m.run_id = c.run_id
ORDER BY 3, 1, 2`

// missingSQL lists the absent sequence numbers of one run as ranges,
// including a missing head (before the first stored) and tail (up to $3,
// the run's numbered count).
const missingSQL = `
WITH seqs AS (
  SELECT DISTINCT seq FROM loom.spans
  WHERE kind = 'server' AND instance_id = $1 AND coalesce(run_id, '') = $2 AND seq IS NOT NULL
), edges AS (
  SELECT seq, lag(seq, 1, 0::bigint) OVER (ORDER BY seq) AS prev FROM seqs
  UNION ALL
  SELECT $3::bigint + 1, coalesce((SELECT max(seq) FROM seqs), 0)
)
SELECT prev + 1, seq - 1 FROM edges WHERE seq > prev + 1 ORDER BY 1 LIMIT $4`

// Completeness reports every run with a row since the given time, oldest
// first: the answer to "was every call this gateway numbered stored?".
func Completeness(ctx context.Context, db TxBeginner, since time.Time, timeout time.Duration) ([]Run, error) {
	var runs []Run
	err := ReadAll(ctx, db, timeout, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, completenessSQL, since)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r Run
			if err := rows.Scan(&r.InstanceID, &r.RunID, &r.StartedAt, &r.HasStartMarker, &r.Closed,
				&r.Numbered, &r.Stored, &r.LossBound, &r.CommitIntervalSeconds); err != nil {
				rows.Close()
				return err
			}
			r.Gaps = r.Numbered - r.Stored
			runs = append(runs, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range runs {
			r := &runs[i]
			if r.Gaps == 0 {
				continue
			}
			rows, err := tx.Query(ctx, missingSQL, r.InstanceID, r.RunID, r.Numbered, maxMissingRanges)
			if err != nil {
				return err
			}
			for rows.Next() {
				var m [2]int64
				if err := rows.Scan(&m[0], &m[1]); err != nil {
					rows.Close()
					return err
				}
				r.Missing = append(r.Missing, m)
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("completeness: %w", err)
	}
	return runs, nil
}
