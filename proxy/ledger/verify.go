package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loom-gateway/loom/proxy/schema"
)

// VerifyOptions choose what Verify checks.
type VerifyOptions struct {
	// Chain limits the check to one chain (a tenant id, or SystemChain);
	// "" checks every chain.
	Chain string
	// From and To, when set, limit each chain to the entries appended in
	// [From, To) (loom.ledger_entries.created_at), as one contiguous run of
	// indexes: the first entry's prev_hash is taken as given, and the
	// chain's head is not compared. Zero values are unbounded.
	From, To time.Time
	// PublicKey is the key the checkpoints must be signed with. nil checks
	// each checkpoint against the key stored beside it, which proves
	// nothing against someone who can write the table: pin the key.
	PublicKey ed25519.PublicKey
}

// Problem is the first bad entry of a chain, or a bad checkpoint (Chain
// "", Index 0).
type Problem struct {
	Chain string `json:"chain"`
	Index int64  `json:"idx"`
	What  string `json:"what"`
}

func (p Problem) String() string {
	if p.Chain == "" && p.Index == 0 {
		return p.What
	}
	return fmt.Sprintf("chain %q idx %d: %s", p.Chain, p.Index, p.What)
}

// Report is what Verify checked and found.
type Report struct {
	Chains       int64 `json:"chains"`
	Entries      int64 `json:"entries"`
	Calls        int64 `json:"calls"`
	Admin        int64 `json:"admin"`
	SpansChecked int64 `json:"spans_checked"`
	// SpansPastRetention counts call entries whose span's day was already
	// dropped by retention (older than the oldest partition of loom.spans):
	// their chain is checked, their span row cannot be.
	SpansPastRetention int64 `json:"spans_past_retention"`
	Checkpoints        int64 `json:"checkpoints"` // signatures that hold
	// SignedEntries counts the entries a good checkpoint covers: at or
	// before the highest index of their chain that one signed (the chain
	// links them to it).
	SignedEntries int64 `json:"signed_entries"`
	KeyPinned     bool  `json:"key_pinned"` // checkpoints checked against a given key
	// Problems holds the first bad entry of each bad chain, chains in
	// order, then each bad checkpoint. Empty when all holds.
	Problems []Problem `json:"problems"`
}

// OK reports whether nothing was found wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// pageSize is how many entries Verify reads at a time.
const pageSize = 2000

// Verify recomputes the chains from Postgres, in one read-only snapshot:
// indexes gapless from 1, each prev_hash the hash before it, each hash
// SHA-256(prev_hash || canonical), each row's columns those of its
// canonical entry, each call entry equal to its span row in loom.spans
// (an edited token count there is found too, a deleted span row too), each
// chain's head its last entry, and each checkpoint signed (by
// opts.PublicKey when given) over heads that are on the chains.
//
// It returns an error only when it could not check; what it found wrong
// is in the report.
func Verify(ctx context.Context, db schema.TxBeginner, opts VerifyOptions) (*Report, error) {
	rep := &Report{KeyPinned: opts.PublicKey != nil, Problems: []Problem{}}
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		v := &verifier{tx: tx, rep: rep, opts: opts, signed: map[string]map[int64]signature{}, top: map[string]signature{}}
		return v.run(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger verify: %w", err)
	}
	return rep, nil
}

// signature is a hash a checkpoint signed for an entry.
type signature struct {
	checkpoint int64
	idx        int64
	hash       [HashSize]byte
}

type verifier struct {
	tx     pgx.Tx
	rep    *Report
	opts   VerifyOptions
	signed map[string]map[int64]signature // chain -> idx -> what a checkpoint signed
	top    map[string]signature           // chain -> the highest idx signed
	// oldestSpanDay is the first day loom.spans still has; spans before it
	// were dropped by retention.
	oldestSpanDay time.Time
	cpProblems    []Problem
}

func (v *verifier) run(ctx context.Context) error {
	if err := v.loadCheckpoints(ctx); err != nil {
		return err
	}
	days, err := schema.Partitions(ctx, v.tx, "spans")
	if err != nil {
		return fmt.Errorf("spans partitions: %w", err)
	}
	v.oldestSpanDay = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range days {
		if d.Before(v.oldestSpanDay) {
			v.oldestSpanDay = d
		}
	}
	ranges, err := v.ranges(ctx)
	if err != nil {
		return err
	}
	heads, err := v.heads(ctx)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		v.rep.Chains++
		p, err := v.chain(ctx, r, heads)
		if err != nil {
			return fmt.Errorf("chain %q: %w", r.chain, err)
		}
		if p != nil {
			v.rep.Problems = append(v.rep.Problems, *p)
		}
	}
	v.rep.Problems = append(v.rep.Problems, v.cpProblems...)
	return nil
}

// loadCheckpoints checks every checkpoint's signature and keeps what the
// good ones signed about the chains under check.
func (v *verifier) loadCheckpoints(ctx context.Context) error {
	rows, err := v.tx.Query(ctx, "SELECT id, signed_at, public_key, canonical, signature FROM loom.ledger_checkpoints ORDER BY id")
	if err != nil {
		return err
	}
	var c Checkpoint
	var pub []byte
	_, err = pgx.ForEachRow(rows, []any{&c.ID, &c.SignedAt, &pub, &c.Canonical, &c.Signature}, func() error {
		c.PublicKey = ed25519.PublicKey(pub)
		at, heads, derr := DecodeCheckpoint(c.Canonical)
		c.Heads = heads
		if derr == nil && !at.Equal(c.SignedAt) {
			derr = fmt.Errorf("signed_at %s in the row, %s in the signed bytes", formatTime(c.SignedAt), formatTime(at))
		}
		if derr == nil {
			derr = c.Check(v.opts.PublicKey)
		}
		if derr != nil {
			v.cpProblems = append(v.cpProblems, Problem{What: fmt.Sprintf("checkpoint #%d: %v", c.ID, derr)})
			return nil
		}
		v.rep.Checkpoints++
		for _, h := range heads {
			if v.opts.Chain != "" && h.Chain != v.opts.Chain {
				continue
			}
			m := v.signed[h.Chain]
			if m == nil {
				m = map[int64]signature{}
				v.signed[h.Chain] = m
			}
			s := signature{checkpoint: c.ID, idx: h.Index, hash: h.Hash}
			if old, ok := m[h.Index]; !ok || old.hash == s.hash {
				if !ok {
					m[h.Index] = s
				}
			} else {
				v.cpProblems = append(v.cpProblems, Problem{What: fmt.Sprintf(
					"checkpoints #%d and #%d signed different hashes for chain %q idx %d", old.checkpoint, c.ID, h.Chain, h.Index)})
			}
			if t, ok := v.top[h.Chain]; !ok || h.Index > t.idx {
				v.top[h.Chain] = s
			}
		}
		return nil
	})
	return err
}

// span is a contiguous run of one chain's indexes to check; to 0 is
// unbounded (to the chain's end, whose head is then checked too).
type span struct {
	chain    string
	from, to int64
}

func (v *verifier) ranges(ctx context.Context) ([]span, error) {
	var out []span
	if v.opts.From.IsZero() && v.opts.To.IsZero() {
		var chains []string
		if v.opts.Chain != "" {
			chains = []string{v.opts.Chain}
		} else {
			rows, _ := v.tx.Query(ctx, "SELECT chain FROM loom.ledger_heads UNION SELECT DISTINCT chain FROM loom.ledger_entries")
			var err error
			if chains, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return nil, err
			}
			for c := range v.signed {
				chains = append(chains, c)
			}
		}
		slices.Sort(chains)
		for _, c := range slices.Compact(chains) {
			out = append(out, span{chain: c, from: 1})
		}
		return out, nil
	}
	from, to := v.opts.From, v.opts.To
	if to.IsZero() {
		to = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	rows, _ := v.tx.Query(ctx, `SELECT chain, min(idx), max(idx) FROM loom.ledger_entries
WHERE created_at >= $1 AND created_at < $2 AND ($3 = '' OR chain = $3) GROUP BY chain`, from, to, v.opts.Chain)
	var s span
	_, err := pgx.ForEachRow(rows, []any{&s.chain, &s.from, &s.to}, func() error {
		if v.opts.To.IsZero() {
			s.to = 0 // to the end: the head is checked too
		}
		out = append(out, s)
		return nil
	})
	slices.SortFunc(out, func(a, b span) int { return strings.Compare(a.chain, b.chain) })
	return out, err
}

func (v *verifier) heads(ctx context.Context) (map[string]Head, error) {
	rows, _ := v.tx.Query(ctx, "SELECT chain, idx, hash FROM loom.ledger_heads")
	out := map[string]Head{}
	var h Head
	var hash []byte
	_, err := pgx.ForEachRow(rows, []any{&h.Chain, &h.Index, &hash}, func() error {
		h.Hash = [HashSize]byte{}
		copy(h.Hash[:], hash)
		out[h.Chain] = h
		return nil
	})
	return out, err
}

// row is one row of loom.ledger_entries.
type row struct {
	idx            int64
	kind, ref      string
	tenant         pgtype.Text
	canonical      []byte
	prevHash, hash []byte
	entry          Entry
}

// chain checks one run of a chain and returns its first bad entry, or nil.
func (v *verifier) chain(ctx context.Context, r span, heads map[string]Head) (*Problem, error) {
	bad := func(idx int64, format string, args ...any) *Problem {
		return &Problem{Chain: r.chain, Index: idx, What: fmt.Sprintf(format, args...)}
	}
	expect := r.from
	var prev [HashSize]byte // the hash before expect
	first := true
	for {
		rows, _ := v.tx.Query(ctx, `SELECT idx, kind, ref, tenant_id, canonical, prev_hash, hash FROM loom.ledger_entries
WHERE chain = $1 AND idx >= $2 AND ($3 = 0 OR idx <= $3) ORDER BY idx LIMIT $4`, r.chain, expect, r.to, pageSize)
		page, err := pgx.CollectRows(rows, func(rs pgx.CollectableRow) (row, error) {
			var x row
			err := rs.Scan(&x.idx, &x.kind, &x.ref, &x.tenant, &x.canonical, &x.prevHash, &x.hash)
			return x, err
		})
		if err != nil {
			return nil, err
		}
		if first && r.from > 1 && len(page) > 0 && len(page[0].prevHash) == HashSize {
			// A range from the middle: the entry before it is trusted as
			// stored, unless a checkpoint signed it otherwise.
			copy(prev[:], page[0].prevHash)
			if s, ok := v.signed[r.chain][r.from-1]; ok && s.hash != prev {
				return bad(r.from, "prev_hash is not the hash checkpoint #%d signed for idx %d", s.checkpoint, r.from-1), nil
			}
		}
		first = false
		// The structural checks run in index order up to the first
		// problem; the span rows of the call entries before it are then
		// compared, and the lowest index found wrong wins.
		var structural *Problem
		checked := 0
		for i := range page {
			x := &page[i]
			if structural = v.entry(r.chain, expect, &prev, x); structural != nil {
				break
			}
			checked++
			expect++
		}
		spanProblem, err := v.spans(ctx, r.chain, page[:checked])
		if err != nil {
			return nil, err
		}
		if spanProblem != nil {
			return spanProblem, nil
		}
		if structural != nil {
			return structural, nil
		}
		if len(page) < pageSize {
			break
		}
	}
	last := expect - 1
	if t, ok := v.top[r.chain]; ok && min(t.idx, last) >= r.from {
		v.rep.SignedEntries += min(t.idx, last) - r.from + 1
	}
	if r.to != 0 {
		if last < r.to {
			return bad(expect, "missing: the range ends at idx %d", r.to), nil
		}
		return nil, nil
	}
	if t, ok := v.top[r.chain]; ok && t.idx > last {
		return bad(last+1, "missing: checkpoint #%d signed the chain up to idx %d", t.checkpoint, t.idx), nil
	}
	h, ok := heads[r.chain]
	switch {
	case !ok && last > 0:
		return bad(last, "the chain has no row in loom.ledger_heads"), nil
	case !ok:
		return nil, nil
	case h.Index > last:
		return bad(last+1, "missing: the chain's head says it has %d entries", h.Index), nil
	case h.Index < last:
		return bad(h.Index+1, "not covered by the chain's head (idx %d): appended outside Loom", h.Index), nil
	case h.Hash != prev:
		return bad(last, "the chain's head holds another hash for its last entry"), nil
	}
	return nil, nil
}

// entry runs the checks of one row that need no other table; prev is the
// hash before it, advanced when the row is good.
func (v *verifier) entry(chain string, expect int64, prev *[HashSize]byte, x *row) *Problem {
	bad := func(idx int64, format string, args ...any) *Problem {
		return &Problem{Chain: chain, Index: idx, What: fmt.Sprintf(format, args...)}
	}
	if x.idx != expect {
		return bad(expect, "missing: the chain goes on at idx %d", x.idx)
	}
	e, err := Decode(x.canonical)
	if err != nil {
		return bad(x.idx, "canonical: %v", err)
	}
	if e.Chain != chain || e.Index != x.idx {
		return bad(x.idx, "the row holds the canonical entry of chain %q idx %d (rows moved or reordered)", e.Chain, e.Index)
	}
	if err := e.Validate(); err != nil {
		return bad(x.idx, "the canonical entry is not valid: %v", err)
	}
	if string(e.Kind) != x.kind || e.Ref() != x.ref || e.tenant() != x.tenant.String || (x.tenant.Valid != (e.tenant() != "")) {
		return bad(x.idx, "kind, ref or tenant_id of the row differ from its canonical entry")
	}
	if !bytes.Equal(x.prevHash, prev[:]) {
		return bad(x.idx, "prev_hash is not the hash of idx %d", x.idx-1)
	}
	sum := Hash(*prev, x.canonical)
	if !bytes.Equal(x.hash, sum[:]) {
		return bad(x.idx, "hash is not SHA-256(prev_hash || canonical): the row was edited")
	}
	if s, ok := v.signed[chain][x.idx]; ok && s.hash != sum {
		return bad(x.idx, "checkpoint #%d signed another hash for this entry", s.checkpoint)
	}
	*prev = sum
	x.entry = e
	v.rep.Entries++
	if e.Kind == KindCall {
		v.rep.Calls++
	} else {
		v.rep.Admin++
	}
	return nil
}

// spanColumns reads a span row as a call entry holds it. Cost and the
// cache creation tokens come from typed columns where the schema has them,
// else from the attributes jsonb (to_jsonb(s)->>'col' is NULL for a column
// that does not exist).
const spanColumns = `s.kind, s.tenant_id, s.api_key_id, s.instance_id, s.run_id, s.seq, s.upstream_attempt::int8,
  s.request_model, s.response_model, s.deployment, s.provider,
  s.input_tokens, s.output_tokens, s.cache_read_tokens,
  coalesce(to_jsonb(s)->>'cache_creation_tokens', s.attributes->>'gen_ai.usage.cache_creation.input_tokens'),
  s.reasoning_tokens, s.total_tokens,
  coalesce(to_jsonb(s)->>'cost', s.attributes->>'loom.cost'),
  coalesce(to_jsonb(s)->>'cost_currency', s.attributes->>'loom.cost.currency'),
  coalesce(to_jsonb(s)->>'price_id', s.attributes->>'loom.cost.price_id'),
  s.status_code, s.http_status::int8, s.error_type, s.start_time, s.end_time`

// spans compares the call entries of page with their span rows and returns
// the first that differs.
func (v *verifier) spans(ctx context.Context, chain string, page []row) (*Problem, error) {
	var traces, spanIDs []string
	var starts []time.Time
	var at []int // index in page
	for i := range page {
		e := &page[i].entry
		if e.Kind != KindCall {
			continue
		}
		if e.Call.Start.Before(v.oldestSpanDay) {
			v.rep.SpansPastRetention++
			continue
		}
		traces, spanIDs, starts, at = append(traces, e.Call.TraceID), append(spanIDs, e.Call.SpanID), append(starts, e.Call.Start), append(at, i)
	}
	if len(at) == 0 {
		return nil, nil
	}
	rows, _ := v.tx.Query(ctx, `SELECT u.i, `+spanColumns+`
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS u(t, sp, st, i)
JOIN loom.spans s ON s.trace_id = u.t AND s.span_id = u.sp AND s.start_time = u.st`, traces, spanIDs, starts)
	found := make(map[int]*Problem, len(at))
	var i int64
	var kind string
	var tenant pgtype.Text
	var creation, cost pgtype.Text
	var got Entry
	c := &got.Call
	_, err := pgx.ForEachRow(rows, []any{&i, &kind, &tenant, &c.KeyID, &c.InstanceID, &c.RunID, &c.Seq, &c.Attempt,
		&c.RequestModel, &c.ResponseModel, &c.Deployment, &c.Provider,
		&c.InputTokens, &c.OutputTokens, &c.CacheReadTokens, &creation, &c.ReasoningTokens, &c.TotalTokens,
		&cost, &c.CostCurrency, &c.CostPriceID, &c.StatusCode, &c.HTTPStatus, &c.ErrorType, &c.Start, &c.End,
	}, func() error {
		x := &page[at[i-1]]
		want := &x.entry
		c.TraceID, c.SpanID, c.Tenant = want.Call.TraceID, want.Call.SpanID, tenant.String
		c.CacheCreationTokens = parseTokens(creation)
		c.Cost = cost
		got.Kind = KindCall
		var p *Problem
		if kind != "client" {
			p = &Problem{Chain: chain, Index: x.idx, What: fmt.Sprintf("its span row is a %s span, not a client span", kind)}
		} else if d := diffCall(&want.Call, c); d != "" {
			p = &Problem{Chain: chain, Index: x.idx, What: d}
		}
		found[at[i-1]] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.rep.SpansChecked += int64(len(found))
	for _, j := range at {
		p, ok := found[j]
		if !ok {
			e := &page[j].entry
			return &Problem{Chain: chain, Index: page[j].idx, What: fmt.Sprintf(
				"its span (trace %s span %s start %s) is not in loom.spans", e.Call.TraceID, e.Call.SpanID, formatTime(e.Call.Start))}, nil
		}
		if p != nil {
			return p, nil
		}
	}
	return nil, nil
}

// parseTokens reads a token count kept as text (a jsonb number), as the
// exporter reads an attribute: an integer, or a float with no fraction.
func parseTokens(t pgtype.Text) pgtype.Int8 {
	if !t.Valid {
		return pgtype.Int8{}
	}
	if n, err := strconv.ParseInt(t.String, 10, 64); err == nil {
		return pgtype.Int8{Int64: n, Valid: true}
	}
	if f, err := strconv.ParseFloat(t.String, 64); err == nil && f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return pgtype.Int8{Int64: int64(f), Valid: true}
	}
	// Not a count: compared as is, it differs from any entry's.
	return pgtype.Int8{Int64: math.MinInt64, Valid: true}
}

// diffCall names the first field of the entry that its span row does not
// match, with both values, or "".
func diffCall(want, got *Call) string {
	we, ge := Entry{Kind: KindCall, Call: *want}, Entry{Kind: KindCall, Call: *got}
	for _, f := range callFields {
		a, b := f.get(&we), f.get(&ge)
		if f.name == "cost" && sameDecimal(a, b) {
			continue
		}
		if a != b {
			return fmt.Sprintf("%s: the ledger says %s, loom.spans says %s", f.name, show(a), show(b))
		}
	}
	return ""
}

func show(v value) string {
	if !v.ok {
		return "NULL"
	}
	return strconv.Quote(v.s)
}

// sameDecimal compares two costs as numbers: the entry keeps the
// attribute's decimal, Postgres may print the same number another way
// (1e-05, 0.000010). Stored as a float (a double attribute, or a numeric
// made from one), only 15 significant digits are sure to survive.
func sameDecimal(a, b value) bool {
	if a.ok != b.ok {
		return false
	}
	if !a.ok || a.s == b.s {
		return true
	}
	x, okx := new(big.Rat).SetString(a.s)
	y, oky := new(big.Rat).SetString(b.s)
	if okx && oky && x.Cmp(y) == 0 {
		return true
	}
	fx, errx := strconv.ParseFloat(a.s, 64)
	fy, erry := strconv.ParseFloat(b.s, 64)
	return errx == nil && erry == nil && strconv.FormatFloat(fx, 'g', 15, 64) == strconv.FormatFloat(fy, 'g', 15, 64)
}
