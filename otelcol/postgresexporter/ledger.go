package postgresexporter

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/spanattr"
)

// The ledger (proxy/ledger): each CLIENT span with a tenant that a push
// stores becomes a call entry of its tenant's chain, appended in the same
// transaction as the span rows, so an entry exists exactly when its span
// does. Append skips entries already in the ledger, so a redelivered batch
// adds none, like the span rows it repeats.

// The cost attributes (set by the proxy from its price catalog). Named here
// rather than in proxy/spanattr so the ledger does not wait for them; they
// are the same strings.
const (
	attrCost         = "loom.cost"
	attrCostCurrency = "loom.cost.currency"
	attrCostPriceID  = "loom.cost.price_id"
)

// errLedger marks a failed append: never a data error of the spans (which
// would send them to dead letters), always retried with the batch.
var errLedger = errors.New("ledger append")

// ledgerEntries are the call entries of rows, in (instance, run, seq,
// attempt) order: the order the proxy numbered its calls in.
func (e *pgExporter) ledgerEntries(rows []spanRow) []ledger.Entry {
	// The rows are sorted, not the entries: a pointer swaps cheaper than
	// an entry.
	var calls []*spanRow
	for i := range rows {
		if r := &rows[i]; r.kind == "client" && r.tenantID.Valid && r.tenantID.String != "" {
			calls = append(calls, r)
		}
	}
	slices.SortStableFunc(calls, func(a, b *spanRow) int {
		return cmp.Or(cmpText(a.instanceID, b.instanceID), cmpText(a.runID, b.runID),
			cmpInt(a.seq, b.seq), cmpInt(int4to8(a.upstreamAttempt), int4to8(b.upstreamAttempt)))
	})
	out := make([]ledger.Entry, 0, len(calls))
	for _, r := range calls {
		en := callEntry(r)
		if err := en.Validate(); err != nil {
			// Stored, but not ledgered: blocking the queue forever on it
			// would be worse. Verify cannot miss what is not there, so
			// say so loudly.
			e.logger.Error("span stored without a ledger entry", zap.String("trace_id", r.traceID),
				zap.String("span_id", r.spanID), zap.Error(err))
			continue
		}
		out = append(out, en)
	}
	return out
}

// appendLedger appends the call entries of rows inside tx.
func (e *pgExporter) appendLedger(ctx context.Context, tx pgx.Tx, rows []spanRow) (int64, error) {
	entries := e.ledgerEntries(rows)
	if err := ledger.Append(ctx, tx, entries...); err != nil {
		return 0, fmt.Errorf("%w: %w", errLedger, err)
	}
	var n int64
	for i := range entries {
		if entries[i].Index > 0 {
			n++
		}
	}
	return n, nil
}

func cmpText(a, b pgtype.Text) int {
	if a.Valid != b.Valid {
		if a.Valid {
			return 1
		}
		return -1
	}
	return cmp.Compare(a.String, b.String)
}

func cmpInt(a, b pgtype.Int8) int {
	if a.Valid != b.Valid {
		if a.Valid {
			return 1
		}
		return -1
	}
	return cmp.Compare(a.Int64, b.Int64)
}

// callEntry is the entry of a CLIENT span row: its typed columns as stored,
// and the attributes that have none yet (cache creation tokens, cost) as
// the attributes jsonb keeps them.
func callEntry(r *spanRow) ledger.Entry {
	c := ledger.Call{
		TraceID: r.traceID, SpanID: r.spanID, Tenant: r.tenantID.String,
		KeyID: r.apiKeyID, InstanceID: r.instanceID, RunID: r.runID, Seq: r.seq, Attempt: int4to8(r.upstreamAttempt),
		RequestModel: r.requestModel, ResponseModel: r.responseModel, Deployment: r.deployment, Provider: r.provider,
		InputTokens: r.inputTokens, OutputTokens: r.outputTokens, CacheReadTokens: r.cacheReadTokens,
		ReasoningTokens: r.reasoningTokens, TotalTokens: r.totalTokens,
		StatusCode: r.statusCode, HTTPStatus: int4to8(r.httpStatus), ErrorType: r.errorType,
		Start: ledger.TruncateTime(r.start),
	}
	if r.end.Valid {
		c.End = pgtype.Timestamptz{Time: ledger.TruncateTime(r.end.Time), Valid: true}
	}
	attrs := r.src.span.Attributes()
	if v, ok := attrs.Get(spanattr.GenAIUsageCacheCreationInputTokens); ok {
		if n, ok := exactInt(v, math.MinInt64, math.MaxInt64); ok {
			c.CacheCreationTokens = pgtype.Int8{Int64: n, Valid: true}
		}
	}
	c.Cost = attrText(attrs, attrCost)
	c.CostCurrency = attrText(attrs, attrCostCurrency)
	c.CostPriceID = attrText(attrs, attrCostPriceID)
	return ledger.Entry{Chain: c.Tenant, Kind: ledger.KindCall, Call: c}
}

// attrText is an attribute as text the way jsonb's ->> prints it: a
// number in plain decimal (verify compares costs as numbers).
func attrText(attrs pcommon.Map, key string) pgtype.Text {
	v, ok := attrs.Get(key)
	if !ok {
		return pgtype.Text{}
	}
	var s string
	switch v.Type() {
	case pcommon.ValueTypeStr:
		s = v.Str()
	case pcommon.ValueTypeInt:
		s = strconv.FormatInt(v.Int(), 10)
	case pcommon.ValueTypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return pgtype.Text{}
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
	case pcommon.ValueTypeBool:
		s = strconv.FormatBool(v.Bool())
	default:
		return pgtype.Text{}
	}
	return pgtype.Text{String: s, Valid: true}
}

func int4to8(n pgtype.Int4) pgtype.Int8 { return pgtype.Int8{Int64: int64(n.Int32), Valid: n.Valid} }

// checkpointTimeout bounds one checkpoint; finalCheckpointTimeout the one
// made while the collector stops.
const (
	checkpointTimeout      = 30 * time.Second
	finalCheckpointTimeout = 5 * time.Second
)

// checkpointLoop signs the heads of all chains every checkpoint_interval,
// and once more when the exporter stops, so what it stored last is signed.
func (e *pgExporter) checkpointLoop(ctx context.Context, key ed25519.PrivateKey, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(e.cfg.Ledger.CheckpointInterval)
	defer t.Stop()
	for {
		stopping := false
		select {
		case <-ctx.Done():
			stopping = true
		case <-t.C:
		}
		timeout := checkpointTimeout
		if stopping {
			timeout = finalCheckpointTimeout // shutdown waits on it
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		c, err := ledger.WriteCheckpoint(cctx, e.pool, key, e.now())
		cancel()
		switch {
		case err != nil:
			e.logger.Warn("ledger checkpoint failed", zap.Error(err))
		case c != nil:
			e.logger.Debug("ledger checkpoint", zap.Int64("id", c.ID), zap.Int("chains", len(c.Heads)))
		}
		if stopping {
			return
		}
	}
}
