package ledger

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Append appends entries to their chains inside the caller's transaction
// tx, so they are committed exactly when what they record is. Entries of
// one chain keep the order given.
//
// It is idempotent: an entry whose reference (Entry.Ref) is already in the
// ledger, or earlier in entries, is skipped. Appends to one chain are
// serialised by a lock on the chain's row of loom.ledger_heads, held until
// tx ends: keep the transaction short after Append. Chains are locked in
// sorted order, so two transactions appending to the same chains wait for
// each other instead of deadlocking.
//
// Append sets the Index of each entry it appended (entries is the caller's
// slice) and leaves 0 in the ones it skipped. An invalid entry fails the
// whole call with ErrInvalidEntry before anything is written.
func Append(ctx context.Context, tx pgx.Tx, entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	var chains []string
	kinds, refs := make([]string, len(entries)), make([]string, len(entries))
	for i := range entries {
		e := &entries[i]
		e.Index = 0
		if err := e.Validate(); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		kinds[i], refs[i] = string(e.Kind), e.Ref()
		chains = append(chains, e.Chain)
	}
	slices.Sort(chains)
	chains = slices.Compact(chains)

	// One round trip: make the heads that do not exist yet, lock them all,
	// then (under the locks, so a concurrent append of the same entries
	// has committed or not started) find the references already stored.
	heads := make(map[string]head, len(chains))
	seen := make(map[string]bool, len(entries))
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO loom.ledger_heads (chain, idx, hash)
SELECT c, 0, $2 FROM unnest($1::text[]) AS c
ON CONFLICT (chain) DO NOTHING`, chains, ZeroHash[:])
	b.Queue(`SELECT chain, idx, hash FROM loom.ledger_heads WHERE chain = ANY($1) ORDER BY chain FOR UPDATE`, chains).
		Query(func(rows pgx.Rows) error {
			var h head
			var chain string
			var hash []byte
			_, err := pgx.ForEachRow(rows, []any{&chain, &h.idx, &hash}, func() error {
				if len(hash) != HashSize {
					return fmt.Errorf("ledger head of chain %q: hash of %d bytes", chain, len(hash))
				}
				copy(h.hash[:], hash)
				heads[chain] = h
				return nil
			})
			return err
		})
	b.Queue(`SELECT e.kind, e.ref FROM unnest($1::text[], $2::text[]) AS u(kind, ref)
JOIN loom.ledger_entries e ON e.kind = u.kind AND e.ref = u.ref`, kinds, refs).
		Query(func(rows pgx.Rows) error {
			var kind, ref string
			_, err := pgx.ForEachRow(rows, []any{&kind, &ref}, func() error {
				seen[kind+"\x00"+ref] = true
				return nil
			})
			return err
		})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger: lock chains: %w", err)
	}

	ins := inserts{hashes: make([]byte, 0, 2*HashSize*len(entries))}
	for i := range entries {
		e := &entries[i]
		key := kinds[i] + "\x00" + refs[i]
		if seen[key] {
			continue
		}
		seen[key] = true
		h, ok := heads[e.Chain]
		if !ok {
			return fmt.Errorf("ledger: chain %q has no head row after it was made", e.Chain)
		}
		e.Index = h.idx + 1
		start := len(ins.arena)
		ins.arena = e.AppendCanonical(ins.arena)
		canonical := ins.arena[start:]
		if len(canonical) > maxEntry {
			return fmt.Errorf("entry %d: %w: %d bytes encoded, over %d", i, ErrInvalidEntry, len(canonical), maxEntry)
		}
		hash := Hash(h.hash, canonical)
		ins.add(e, refs[i], start, h.hash, hash)
		heads[e.Chain] = head{idx: e.Index, hash: hash}
	}
	if len(ins.chain) == 0 {
		return nil
	}
	ins.slice()
	var hc []string
	var hi []int64
	var hh [][]byte
	for _, c := range chains {
		h := heads[c]
		hc, hi, hh = append(hc, c), append(hi, h.idx), append(hh, h.hash[:])
	}
	b = &pgx.Batch{}
	b.Queue(`INSERT INTO loom.ledger_entries (chain, idx, kind, ref, tenant_id, canonical, prev_hash, hash)
SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[])`,
		ins.chain, ins.idx, ins.kind, ins.ref, ins.tenant, ins.canonical, ins.prev, ins.hash)
	b.Queue(`UPDATE loom.ledger_heads h SET idx = u.idx, hash = u.hash, updated_at = now()
FROM unnest($1::text[], $2::int8[], $3::bytea[]) AS u(chain, idx, hash)
WHERE h.chain = u.chain AND h.idx <> u.idx`, hc, hi, hh)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger: append %d entries: %w", len(ins.chain), err)
	}
	return nil
}

// head is a chain's last index and hash.
type head struct {
	idx  int64
	hash [HashSize]byte
}

// inserts are the columns of the entries to insert, one array each. The
// canonical bytes of all entries share one arena, and the hashes another,
// sliced once all are written (the arena may move while it grows).
type inserts struct {
	chain, kind, ref      []string
	tenant                []pgtype.Text
	idx                   []int64
	starts                []int // where each entry's canonical bytes start in arena
	arena, hashes         []byte
	canonical, prev, hash [][]byte
}

func (in *inserts) add(e *Entry, ref string, start int, prev, hash [HashSize]byte) {
	t := e.tenant()
	in.chain = append(in.chain, e.Chain)
	in.idx = append(in.idx, e.Index)
	in.kind = append(in.kind, string(e.Kind))
	in.ref = append(in.ref, ref)
	in.tenant = append(in.tenant, pgtype.Text{String: t, Valid: t != ""})
	in.starts = append(in.starts, start)
	in.hashes = append(append(in.hashes, prev[:]...), hash[:]...)
}

// slice makes the canonical, prev and hash columns from the arenas.
func (in *inserts) slice() {
	n := len(in.starts)
	in.canonical, in.prev, in.hash = make([][]byte, n), make([][]byte, n), make([][]byte, n)
	for i, start := range in.starts {
		end := len(in.arena)
		if i+1 < n {
			end = in.starts[i+1]
		}
		in.canonical[i] = in.arena[start:end:end]
		h := in.hashes[2*HashSize*i:]
		in.prev[i], in.hash[i] = h[:HashSize:HashSize], h[HashSize:2*HashSize:2*HashSize]
	}
}
