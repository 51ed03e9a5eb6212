package ledger_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/schema"
)

// migrated is a fresh, migrated database with today's span partitions.
func migrated(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := pgtest.Database(t, pgtest.Start(t))
	db, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := schema.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := schema.EnsurePartitions(t.Context(), db, now.AddDate(0, 0, -1), now); err != nil {
		t.Fatal(err)
	}
	return db
}

// call is call n of tenant, started now, with n input tokens.
func call(tenant string, n int) ledger.Entry {
	e := vectorCall(1)
	e.Chain, e.Call.Tenant = tenant, tenant
	e.Call.TraceID = fmt.Sprintf("%032x", n+1)
	e.Call.SpanID = fmt.Sprintf("%016x", n+1)
	e.Call.Start = time.Now().Add(-time.Minute)
	e.Call.End.Time = e.Call.Start.Add(time.Second)
	e.Call.Seq, e.Call.InputTokens = i8(int64(n)), i8(int64(n))
	return e
}

// store appends entries in one transaction, with the span rows of the
// call entries (as the exporter would have inserted them).
func store(t *testing.T, db *pgxpool.Pool, entries ...ledger.Entry) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), db, func(tx pgx.Tx) error {
		for _, e := range entries {
			if e.Kind != ledger.KindCall {
				continue
			}
			c := e.Call
			_, err := tx.Exec(t.Context(), `INSERT INTO loom.spans (trace_id, span_id, start_time, end_time, name, kind, status_code,
  tenant_id, api_key_id, instance_id, run_id, seq, upstream_attempt, request_model, response_model, deployment, provider,
  input_tokens, output_tokens, cache_read_tokens, reasoning_tokens, total_tokens, http_status, error_type, attributes)
VALUES ($1, $2, $3, $4, 'chat', 'client', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
  jsonb_build_object('gen_ai.usage.cache_creation.input_tokens', $23::int8, 'loom.cost', $24::text::numeric,
    'loom.cost.currency', $25::text, 'loom.cost.price_id', $26::text))
ON CONFLICT DO NOTHING`,
				c.TraceID, c.SpanID, c.Start, c.End, c.StatusCode, c.Tenant, c.KeyID, c.InstanceID, c.RunID, c.Seq, c.Attempt,
				c.RequestModel, c.ResponseModel, c.Deployment, c.Provider, c.InputTokens, c.OutputTokens, c.CacheReadTokens,
				c.ReasoningTokens, c.TotalTokens, c.HTTPStatus, c.ErrorType, c.CacheCreationTokens, c.Cost, c.CostCurrency, c.CostPriceID)
			if err != nil {
				return err
			}
		}
		return ledger.Append(t.Context(), tx, entries...)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func admin(n int) ledger.Entry {
	e := vectorAdmin()
	e.Admin.RequestID = fmt.Sprintf("req-%d", n)
	return e
}

func verify(t *testing.T, db *pgxpool.Pool, opts ledger.VerifyOptions) *ledger.Report {
	t.Helper()
	rep, err := ledger.Verify(t.Context(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func mustOK(t *testing.T, rep *ledger.Report) {
	t.Helper()
	if !rep.OK() {
		t.Fatalf("verify found %v", rep.Problems)
	}
}

func TestAppend_ChainsPerTenant_RedeliverySkipped(t *testing.T) {
	db := migrated(t)
	batch := []ledger.Entry{call("acme", 1), call("globex", 2), call("acme", 3), admin(1)}
	store(t, db, batch...)
	for i, want := range []int64{1, 1, 2, 1} {
		if batch[i].Index != want {
			t.Errorf("entry %d got idx %d, want %d", i, batch[i].Index, want)
		}
	}
	// The same batch again, and a duplicate inside one call: nothing new.
	again := []ledger.Entry{call("acme", 3), call("acme", 1), admin(1), admin(1)}
	store(t, db, again...)
	for i, e := range again {
		if e.Index != 0 {
			t.Errorf("redelivered entry %d appended at idx %d", i, e.Index)
		}
	}
	store(t, db, call("acme", 4), admin(2), admin(2))
	var n int
	if err := db.QueryRow(t.Context(), "SELECT count(*) FROM loom.ledger_entries").Scan(&n); err != nil || n != 6 {
		t.Fatalf("%d entries (%v), want 6", n, err)
	}
	rep := verify(t, db, ledger.VerifyOptions{})
	mustOK(t, rep)
	if rep.Chains != 3 || rep.Entries != 6 || rep.Calls != 4 || rep.Admin != 2 || rep.SpansChecked != 4 {
		t.Fatalf("report %+v", rep)
	}
}

func TestAppend_InvalidEntry_NothingWritten(t *testing.T) {
	db := migrated(t)
	bad := []ledger.Entry{
		func() ledger.Entry { e := call("acme", 1); e.Call.TraceID = "XYZ"; return e }(),
		func() ledger.Entry { e := call("acme", 1); e.Chain = ledger.SystemChain; return e }(),
		func() ledger.Entry { e := call("acme", 1); e.Call.Tenant = "globex"; return e }(),
		func() ledger.Entry { e := call("acme", 1); e.Call.Deployment = txt("\xff"); return e }(),
		func() ledger.Entry { e := admin(1); e.Admin.After = []byte("{not json"); return e }(),
		func() ledger.Entry { e := admin(1); e.Admin.Action = "a|b"; return e }(),
		func() ledger.Entry { e := admin(1); e.Chain = "acme"; return e }(),
	}
	for i, e := range bad {
		err := pgx.BeginFunc(t.Context(), db, func(tx pgx.Tx) error {
			return ledger.Append(t.Context(), tx, call("acme", 9), e)
		})
		if !errors.Is(err, ledger.ErrInvalidEntry) {
			t.Errorf("entry %d: Append = %v, want ErrInvalidEntry", i, err)
		}
	}
	var n int
	if err := db.QueryRow(t.Context(), "SELECT count(*) FROM loom.ledger_entries").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d entries (%v), want none", n, err)
	}
}

// Transactions appending to one chain at once wait for each other: the
// chain comes out gapless, every entry once.
func TestAppend_ConcurrentTransactions_OneGaplessChain(t *testing.T) {
	db := migrated(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Every worker also re-sends its previous entry: a retry.
				n := w*each + i
				entries := []ledger.Entry{admin(n), call("acme", n), call("globex", 10000+n)}
				if i > 0 {
					entries = append(entries, admin(n-1))
				}
				err := pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error {
					return ledger.Append(context.Background(), tx, entries...)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n, top int64
	if err := db.QueryRow(t.Context(), "SELECT count(*), max(idx) FROM loom.ledger_entries WHERE chain = $1", ledger.SystemChain).Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	if n != workers*each || top != n {
		t.Fatalf("system chain: %d entries up to idx %d, want %d", n, top, workers*each)
	}
	// No span rows were stored for these calls: only the chains hold.
	rep := verify(t, db, ledger.VerifyOptions{Chain: ledger.SystemChain})
	mustOK(t, rep)
}

// tamper runs sql on a database holding two chains of 10 calls (spans
// stored) and 3 admin entries, and returns what Verify reports.
func tamper(t *testing.T, sql string, args ...any) *ledger.Report {
	t.Helper()
	db := migrated(t)
	var entries []ledger.Entry
	for i := 1; i <= 10; i++ {
		entries = append(entries, call("acme", i), call("globex", 100+i))
	}
	store(t, db, entries...)
	store(t, db, admin(1), admin(2), admin(3))
	mustOK(t, verify(t, db, ledger.VerifyOptions{}))
	if _, err := db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatal(err)
	}
	return verify(t, db, ledger.VerifyOptions{})
}

func TestVerify_Tampering_NamesTheFirstBadEntry(t *testing.T) {
	tests := []struct {
		name  string
		sql   string
		chain string
		idx   int64
		what  string
	}{
		{"token count edited in loom.spans", `UPDATE loom.spans SET input_tokens = input_tokens + 1 WHERE tenant_id = 'acme' AND seq = 4`,
			"acme", 4, `input_tokens: the ledger says "4", loom.spans says "5"`},
		{"cost edited in the attributes", `UPDATE loom.spans SET attributes = attributes || '{"loom.cost":0.1}' WHERE tenant_id = 'globex' AND seq = 107`,
			"globex", 7, `cost: the ledger says "0.000345", loom.spans says "0.1"`},
		{"span row deleted", `DELETE FROM loom.spans WHERE tenant_id = 'acme' AND seq = 6`,
			"acme", 6, "is not in loom.spans"},
		{"ledger row deleted", `DELETE FROM loom.ledger_entries WHERE chain = 'acme' AND idx = 3`,
			"acme", 3, "missing: the chain goes on at idx 4"},
		{"last ledger row deleted", `DELETE FROM loom.ledger_entries WHERE chain = 'acme' AND idx = 10`,
			"acme", 10, "missing: the chain's head says it has 10 entries"},
		{"two rows swapped", `UPDATE loom.ledger_entries SET idx = 1000 WHERE chain = 'globex' AND idx = 2;
UPDATE loom.ledger_entries SET idx = 2 WHERE chain = 'globex' AND idx = 5;
UPDATE loom.ledger_entries SET idx = 5 WHERE chain = 'globex' AND idx = 1000`,
			"globex", 2, "holds the canonical entry of chain \"globex\" idx 5"},
		{"canonical bytes edited", `UPDATE loom.ledger_entries SET canonical = overlay(canonical placing '\x39'::bytea from length(canonical) - 1) WHERE chain = '_system' AND idx = 2`,
			"_system", 2, "the row was edited"},
		{"admin row retargeted", `UPDATE loom.ledger_entries SET tenant_id = 'globex' WHERE chain = '_system' AND idx = 1`,
			"_system", 1, "tenant_id of the row differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := tamper(t, tt.sql)
			if len(rep.Problems) == 0 {
				t.Fatal("verify found nothing")
			}
			p := rep.Problems[0]
			if p.Chain != tt.chain || p.Index != tt.idx || !strings.Contains(p.What, tt.what) {
				t.Fatalf("first problem %v, want chain %s idx %d: …%s…", rep.Problems, tt.chain, tt.idx, tt.what)
			}
		})
	}
}

func TestCheckpoint_SignsHeads_VerifyHoldsThemToTheChains(t *testing.T) {
	db := migrated(t)
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	if c, err := ledger.WriteCheckpoint(t.Context(), db, key, time.Now()); err != nil || c != nil {
		t.Fatalf("no chains yet: checkpoint %v, %v; want none", c, err)
	}
	store(t, db, call("acme", 1), call("acme", 2), admin(1))
	c, err := ledger.WriteCheckpoint(t.Context(), db, key, time.Now())
	if err != nil || c == nil || len(c.Heads) != 2 || c.Heads[0].Chain != ledger.SystemChain || c.Heads[1].Index != 2 {
		t.Fatalf("checkpoint %+v, %v", c, err)
	}
	if again, err := ledger.WriteCheckpoint(t.Context(), db, key, time.Now()); err != nil || again != nil {
		t.Fatalf("unchanged heads signed again: %+v, %v", again, err)
	}
	store(t, db, call("acme", 3))
	if _, err := ledger.WriteCheckpoint(t.Context(), db, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	rep := verify(t, db, ledger.VerifyOptions{PublicKey: pub})
	mustOK(t, rep)
	if rep.Checkpoints != 2 || rep.SignedEntries != 4 || !rep.KeyPinned {
		t.Fatalf("report %+v", rep)
	}

	// Another key: every checkpoint is refused.
	other := ed25519.NewKeyFromSeed(append(make([]byte, 31), 1)).Public().(ed25519.PublicKey)
	if rep := verify(t, db, ledger.VerifyOptions{PublicKey: other}); len(rep.Problems) != 2 || !strings.Contains(rep.Problems[0].What, "signed by key") {
		t.Fatalf("with another key: %v", rep.Problems)
	}
	// The last entry and the head rolled back together, past a checkpoint:
	// the checkpoint still knows idx 3.
	if _, err := db.Exec(t.Context(), `DELETE FROM loom.ledger_entries WHERE chain = 'acme' AND idx = 3;
UPDATE loom.ledger_heads h SET idx = 2, hash = e.hash FROM loom.ledger_entries e WHERE h.chain = 'acme' AND e.chain = 'acme' AND e.idx = 2`); err != nil {
		t.Fatal(err)
	}
	rep = verify(t, db, ledger.VerifyOptions{PublicKey: pub})
	if len(rep.Problems) != 1 || rep.Problems[0].Index != 3 || !strings.Contains(rep.Problems[0].What, "signed the chain up to idx 3") {
		t.Fatalf("truncated chain: %v", rep.Problems)
	}
	// A signature edited: that checkpoint is named.
	if _, err := db.Exec(t.Context(), `UPDATE loom.ledger_checkpoints SET signature = overlay(signature placing '\x00'::bytea from 1) WHERE id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	rep = verify(t, db, ledger.VerifyOptions{PublicKey: pub})
	if last := rep.Problems[len(rep.Problems)-1]; !strings.Contains(last.What, fmt.Sprintf("checkpoint #%d", c.ID)) {
		t.Fatalf("edited signature: %v", rep.Problems)
	}
}

// -from and -to: only the entries appended in the window are checked, as
// one run per chain anchored on the entry before it.
func TestVerify_TimeRange_ChecksTheRunAppendedInIt(t *testing.T) {
	db := migrated(t)
	store(t, db, call("acme", 1), call("acme", 2), admin(1))
	time.Sleep(2 * time.Millisecond) // created_at is clock_timestamp(): mark falls between
	mark := time.Now()
	store(t, db, call("acme", 3), call("acme", 4), admin(2))
	rep := verify(t, db, ledger.VerifyOptions{From: mark})
	mustOK(t, rep)
	if rep.Chains != 2 || rep.Entries != 3 {
		t.Fatalf("from mark: %+v, want 2 chains and 3 entries", rep)
	}
	if rep := verify(t, db, ledger.VerifyOptions{To: mark, Chain: "acme"}); !rep.OK() || rep.Entries != 2 {
		t.Fatalf("acme to mark: %+v", rep)
	}
	// An edit before the window is outside it; a full check finds it.
	if _, err := db.Exec(t.Context(), `UPDATE loom.spans SET output_tokens = 0 WHERE tenant_id = 'acme' AND seq = 1`); err != nil {
		t.Fatal(err)
	}
	mustOK(t, verify(t, db, ledger.VerifyOptions{From: mark}))
	if rep := verify(t, db, ledger.VerifyOptions{}); len(rep.Problems) != 1 || rep.Problems[0].Index != 1 {
		t.Fatalf("full check: %v", rep.Problems)
	}
}
