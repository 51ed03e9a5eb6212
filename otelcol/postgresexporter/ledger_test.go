package postgresexporter

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/spanattr"
)

// ledgerRows are the chain's entries, decoded, by idx.
func ledgerRows(t *testing.T, x started, chain string) []ledger.Entry {
	t.Helper()
	rows, _ := x.db.Query(t.Context(), "SELECT canonical FROM loom.ledger_entries WHERE chain = $1 ORDER BY idx", chain)
	raw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ledger.Entry, len(raw))
	for i, b := range raw {
		if out[i], err = ledger.Decode(b); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func verifyOK(t *testing.T, x started) *ledger.Report {
	t.Helper()
	rep, err := ledger.Verify(t.Context(), x.db, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify: %v", rep.Problems)
	}
	return rep
}

// The CLIENT span with a tenant is one entry of its tenant's chain, with
// the span's columns as stored and the cost attributes; a SERVER span is
// none; the same batch delivered again adds nothing.
func TestPush_ClientSpanWithTenant_OneLedgerEntryEvenRedelivered(t *testing.T) {
	t.Parallel()
	x := startExporter(t, nil)
	start := time.Now().Add(-time.Minute)
	td := callTraces(start)
	a := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
	a.PutDouble(attrCost, 0.0000345)
	a.PutStr(attrCostCurrency, "USD")
	a.PutStr(attrCostPriceID, "gpt-4o-2024")
	a.PutInt(spanattr.GenAIUsageCacheCreationInputTokens, 12)
	for range 3 {
		if err := x.push(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	got := ledgerRows(t, x, "acme")
	if len(got) != 1 {
		t.Fatalf("%d entries for acme, want 1", len(got))
	}
	c := got[0].Call
	if got[0].Index != 1 || c.TraceID != traceID(1).String() || c.SpanID != spanID(1).String() || c.Seq.Int64 != 41 ||
		c.Attempt.Int64 != 2 || c.InputTokens.Int64 != 100 || c.CacheCreationTokens.Int64 != 12 || c.Cost.String != "0.0000345" ||
		c.CostCurrency.String != "USD" || c.CostPriceID.String != "gpt-4o-2024" || c.StatusCode != "error" ||
		c.HTTPStatus.Int64 != 500 || !c.Start.Equal(ledger.TruncateTime(start)) || c.KeyID.String != "key-7" {
		t.Fatalf("entry %+v", got[0])
	}
	if n := count(t, x.db, "SELECT count(*) FROM loom.ledger_entries"); n != 1 {
		t.Fatalf("%d entries in all, want 1", n)
	}
	if n := x.counter(t, "loom_exporter_ledger_entries"); n != 1 {
		t.Errorf("ledger counter = %d, want 1", n)
	}
	rep := verifyOK(t, x)
	if rep.SpansChecked != 1 {
		t.Fatalf("report %+v", rep)
	}
}

// Within a batch, entries follow the proxy's numbering, whatever order the
// spans came in.
func TestPush_LedgerEntriesInInstanceRunSeqAttemptOrder(t *testing.T) {
	t.Parallel()
	x := startExporter(t, nil)
	td, spans := newTraces()
	now := time.Now()
	type num struct {
		run      string
		seq, try int64
	}
	order := []num{{"r2", 1, 1}, {"r1", 2, 2}, {"r1", 2, 1}, {"r1", 1, 1}, {"r1", 10, 1}}
	for i, n := range order {
		s := addSpan(spans, byte(i+1), now)
		s.SetKind(ptrace.SpanKindClient)
		a := s.Attributes()
		a.PutStr(spanattr.TenantID, "acme")
		a.PutStr(spanattr.InstanceID, "inst-1")
		a.PutStr(spanattr.RunID, n.run)
		a.PutInt(spanattr.Seq, n.seq)
		a.PutInt(spanattr.UpstreamAttempt, n.try)
	}
	// A span of another tenant, and one without a tenant: its own chain,
	// and none.
	addSpan(spans, 20, now).SetKind(ptrace.SpanKindClient)
	o := addSpan(spans, 21, now)
	o.SetKind(ptrace.SpanKindClient)
	o.Attributes().PutStr(spanattr.TenantID, "globex")
	if err := x.push(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	want := []num{{"r1", 1, 1}, {"r1", 2, 1}, {"r1", 2, 2}, {"r1", 10, 1}, {"r2", 1, 1}}
	got := ledgerRows(t, x, "acme")
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		c := got[i].Call
		if c.RunID.String != w.run || c.Seq.Int64 != w.seq || c.Attempt.Int64 != w.try {
			t.Errorf("idx %d is run %s seq %d attempt %d, want %+v", i+1, c.RunID.String, c.Seq.Int64, c.Attempt.Int64, w)
		}
	}
	if len(ledgerRows(t, x, "globex")) != 1 || count(t, x.db, "SELECT count(*) FROM loom.ledger_entries") != 6 {
		t.Fatal("want one globex entry and none for the span without a tenant")
	}
	verifyOK(t, x)
}

// On the one-by-one path (a span Postgres refuses), the spans that land
// are ledgered and the dead letter is not.
func TestPush_OneByOnePath_LedgersOnlyTheStoredSpans(t *testing.T) {
	t.Parallel()
	x := startExporter(t, nil)
	td, spans := newTraces()
	now := time.Now()
	for n := byte(1); n <= 3; n++ {
		s := addSpan(spans, n, now)
		s.SetKind(ptrace.SpanKindClient)
		s.Attributes().PutStr(spanattr.TenantID, "acme")
		if n == 2 {
			s.Attributes().PutStr(spanattr.GenAIInputMessages, `["\ud800"]`) // only Postgres refuses it
		}
	}
	if err := x.push(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	got := ledgerRows(t, x, "acme")
	if len(got) != 2 || got[0].Call.SpanID != spanID(1).String() || got[1].Call.SpanID != spanID(3).String() {
		t.Fatalf("entries %+v, want spans 1 and 3", got)
	}
	verifyOK(t, x)
}

// With a key file, the exporter signs the heads while it runs and once
// more as it stops.
func TestExporter_SigningKey_CheckpointsTheChains(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "ledger.key")
	pub, err := ledger.WriteKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	x := startExporter(t, func(c *Config) {
		c.Ledger.SigningKeyFile = keyFile
		c.Ledger.CheckpointInterval = time.Second
	})
	if err := x.push(t.Context(), callTraces(time.Now())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for count(t, x.db, "SELECT count(*) FROM loom.ledger_checkpoints") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after 20s at a 1s interval")
		}
		time.Sleep(50 * time.Millisecond)
	}
	td := callTraces(time.Now())
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetSpanID(spanID(77))
	if err := x.push(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	if err := x.shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(t.Context(), x.db, ledger.VerifyOptions{PublicKey: pub})
	if err != nil || !rep.OK() || rep.SignedEntries != 2 {
		t.Fatalf("verify %+v, %v: want both entries signed (the last by the checkpoint at shutdown)", rep, err)
	}
}

// A key file that does not hold a key stops the exporter at start.
func TestExporter_BadSigningKey_StartFails(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "ledger.key")
	if err := os.WriteFile(keyFile, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("postgres://localhost:1/x")
	cfg.Ledger.SigningKeyFile = keyFile
	e, err := newExporter(cfg, nopSettings())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.start(t.Context(), nil); err == nil {
		_ = e.shutdown(t.Context())
		t.Fatal("start accepted a key file without a key")
	}
}
