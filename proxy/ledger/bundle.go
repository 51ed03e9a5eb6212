package ledger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/schema"
)

// A bundle is a run of one chain that verifies offline: JSON lines, each
// one compact object with its members in this order, ending in "\n":
//
//	{"format":"loom.ledger.bundle/1","chain":C,"from_idx":F,"to_idx":T,"prev_hash":HEX,
//	 "public_key":B64,"checkpoints":N,"entries":M}                       (one line)
//	{"checkpoint":B64,"signature":B64}                                   N lines, oldest first
//	{"idx":I,"canonical":B64,"hash":HEX}                                 M lines, F..T
//
// prev_hash is the hash of entry F-1 (32 zero bytes when F is 1); the
// checkpoints are those signed by public_key whose head for C lies in
// [F-1, T], each its canonical bytes and signature. Base64 is standard
// with padding, hex lowercase. Every line must
// be exactly as written here (VerifyBundle re-encodes each and compares),
// so a change of any byte fails, naming the line.

// BundleFormat is the header's format.
const BundleFormat = "loom.ledger.bundle/1"

// ExportOptions choose the run of entries to export.
type ExportOptions struct {
	Chain string // the tenant id (or SystemChain); required
	// From and To select the entries appended in [From, To), as for
	// Verify; zero values are unbounded.
	From, To time.Time
	// PublicKey picks the checkpoints to include; nil: the key of the
	// newest checkpoint that covers the run.
	PublicKey ed25519.PublicKey
}

// ErrEmptyRange is returned by Export when the chain has no entry in the
// range.
var ErrEmptyRange = errors.New("no ledger entries in the range")

// BundleSummary says what a bundle holds.
type BundleSummary struct {
	Chain       string `json:"chain"`
	FromIdx     int64  `json:"from_idx"`
	ToIdx       int64  `json:"to_idx"`
	Entries     int64  `json:"entries"`
	Checkpoints int64  `json:"checkpoints"`
	// SignedUpTo is the highest index a checkpoint in the bundle signed (0:
	// none); entries after it are chained but not signed.
	SignedUpTo int64  `json:"signed_up_to"`
	PublicKey  string `json:"public_key"`
}

// Export writes the bundle of opts.Chain's entries in the range to w, from
// one snapshot.
func Export(ctx context.Context, db schema.TxBeginner, w io.Writer, opts ExportOptions) (*BundleSummary, error) {
	if opts.Chain == "" {
		return nil, errors.New("ledger export: no chain (tenant) given")
	}
	var sum *BundleSummary
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		sum, err = export(ctx, tx, w, opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger export: %w", err)
	}
	return sum, nil
}

func export(ctx context.Context, tx pgx.Tx, w io.Writer, opts ExportOptions) (*BundleSummary, error) {
	from, to := opts.From, opts.To
	if to.IsZero() {
		to = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	var lo, hi *int64
	if err := tx.QueryRow(ctx, `SELECT min(idx), max(idx) FROM loom.ledger_entries
WHERE chain = $1 AND created_at >= $2 AND created_at < $3`, opts.Chain, from, to).Scan(&lo, &hi); err != nil {
		return nil, err
	}
	if lo == nil {
		return nil, fmt.Errorf("%w: chain %q", ErrEmptyRange, opts.Chain)
	}
	s := &BundleSummary{Chain: opts.Chain, FromIdx: *lo, ToIdx: *hi, Entries: *hi - *lo + 1}

	prev := ZeroHash
	if s.FromIdx > 1 {
		var h []byte
		err := tx.QueryRow(ctx, `SELECT hash FROM loom.ledger_entries WHERE chain = $1 AND idx = $2`, opts.Chain, s.FromIdx-1).Scan(&h)
		if errors.Is(err, pgx.ErrNoRows) {
			err = tx.QueryRow(ctx, `SELECT prev_hash FROM loom.ledger_entries WHERE chain = $1 AND idx = $2`, opts.Chain, s.FromIdx).Scan(&h)
		}
		if err != nil {
			return nil, err
		}
		copy(prev[:], h)
	}

	// The checkpoints that sign an index of the run (or the one before
	// it), by one key.
	type cp struct {
		id                  int64
		pub, canonical, sig []byte
	}
	var cps []cp
	rows, _ := tx.Query(ctx, "SELECT id, public_key, canonical, signature FROM loom.ledger_checkpoints ORDER BY id")
	var c cp
	_, err := pgx.ForEachRow(rows, []any{&c.id, &c.pub, &c.canonical, &c.sig}, func() error {
		_, heads, err := DecodeCheckpoint(c.canonical)
		if err != nil {
			return nil // verify reports it; a bundle only carries good ones
		}
		for _, h := range heads {
			if h.Chain == opts.Chain && h.Index >= s.FromIdx-1 && h.Index <= s.ToIdx {
				cps = append(cps, cp{c.id, bytes.Clone(c.pub), bytes.Clone(c.canonical), bytes.Clone(c.sig)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pub := opts.PublicKey
	if pub == nil && len(cps) > 0 {
		pub = cps[len(cps)-1].pub
	}
	var keep []cp
	for _, c := range cps {
		if bytes.Equal(c.pub, pub) {
			keep = append(keep, c)
		}
	}
	s.Checkpoints = int64(len(keep))
	if len(keep) > 0 {
		s.PublicKey = EncodePublicKey(pub)
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(appendHeader(nil, s, prev)) //nolint:errcheck // Flush reports it
	var line []byte
	for _, c := range keep {
		line = appendCheckpointLine(line[:0], c.canonical, c.sig)
		bw.Write(line) //nolint:errcheck // Flush reports it
	}
	for next := s.FromIdx; next <= s.ToIdx; {
		rows, _ := tx.Query(ctx, `SELECT idx, canonical, hash FROM loom.ledger_entries
WHERE chain = $1 AND idx >= $2 AND idx <= $3 ORDER BY idx LIMIT $4`, opts.Chain, next, s.ToIdx, pageSize)
		var idx int64
		var canonical, hash []byte
		n := 0
		_, err := pgx.ForEachRow(rows, []any{&idx, &canonical, &hash}, func() error {
			line = appendEntryLine(line[:0], idx, canonical, hash)
			_, err := bw.Write(line)
			next, n = idx+1, n+1
			return err
		})
		if err != nil {
			return nil, err
		}
		if n == 0 {
			// A hole in the chain: the bundle would not verify; say where.
			return nil, fmt.Errorf("chain %q: entry %d is missing from the database (run loom audit verify)", opts.Chain, next)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return s, nil
}

func appendHeader(b []byte, s *BundleSummary, prev [HashSize]byte) []byte {
	b = append(b, `{"format":`...)
	b = json.AppendQuote(b, BundleFormat)
	b = append(b, `,"chain":`...)
	b = json.AppendQuote(b, s.Chain)
	b = append(b, `,"from_idx":`...)
	b = strconv.AppendInt(b, s.FromIdx, 10)
	b = append(b, `,"to_idx":`...)
	b = strconv.AppendInt(b, s.ToIdx, 10)
	b = append(b, `,"prev_hash":"`...)
	b = hex.AppendEncode(b, prev[:])
	b = append(b, `","public_key":`...)
	b = json.AppendQuote(b, s.PublicKey)
	b = append(b, `,"checkpoints":`...)
	b = strconv.AppendInt(b, s.Checkpoints, 10)
	b = append(b, `,"entries":`...)
	b = strconv.AppendInt(b, s.Entries, 10)
	return append(b, "}\n"...)
}

func appendCheckpointLine(b []byte, canonical, sig []byte) []byte {
	b = append(b, `{"checkpoint":"`...)
	b = base64.StdEncoding.AppendEncode(b, canonical)
	b = append(b, `","signature":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	return append(b, "\"}\n"...)
}

func appendEntryLine(b []byte, idx int64, canonical, hash []byte) []byte {
	b = append(b, `{"idx":`...)
	b = strconv.AppendInt(b, idx, 10)
	b = append(b, `,"canonical":"`...)
	b = base64.StdEncoding.AppendEncode(b, canonical)
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, hash)
	return append(b, "\"}\n"...)
}

// BundleError is where a bundle fails: its line (from 1) and, for an entry
// line, the entry's index.
type BundleError struct {
	Line  int
	Index int64 // 0 when the line is not an entry's
	What  string
}

func (e *BundleError) Error() string {
	if e.Index > 0 {
		return fmt.Sprintf("bundle line %d (idx %d): %s", e.Line, e.Index, e.What)
	}
	return fmt.Sprintf("bundle line %d: %s", e.Line, e.What)
}

// bundleLine is any line, decoded leniently; re-encoding it must give the
// line back.
type bundleLine struct {
	Format      string `json:"format"`
	Chain       string `json:"chain"`
	FromIdx     int64  `json:"from_idx"`
	ToIdx       int64  `json:"to_idx"`
	PrevHash    string `json:"prev_hash"`
	PublicKey   string `json:"public_key"`
	Checkpoints int64  `json:"checkpoints"`
	Entries     int64  `json:"entries"`
	Checkpoint  string `json:"checkpoint"`
	Idx         int64  `json:"idx"`
	Canonical   string `json:"canonical"`
	Signature   string `json:"signature"`
	Hash        string `json:"hash"`
}

// maxBundleLine bounds one line: an entry of maxEntry bytes in base64.
const maxBundleLine = maxEntry*4/3 + 1024

// VerifyBundle checks a bundle without a database: the header, each
// checkpoint's signature (by pub when given, else by the bundle's own key,
// which proves less), each entry's canonical bytes, index and hash on the
// chain from prev_hash, and each checkpoint's head for the chain against
// the chain's hash at that index. The first failure is a *BundleError.
func VerifyBundle(r io.Reader, pub ed25519.PublicKey) (*BundleSummary, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	next := func() ([]byte, *bundleLine, error) {
		n++
		b, err := br.ReadSlice('\n')
		var long []byte
		for errors.Is(err, bufio.ErrBufferFull) && len(long)+len(b) <= maxBundleLine {
			long = append(long, b...)
			b, err = br.ReadSlice('\n')
		}
		if long != nil {
			b = append(long, b...)
		}
		switch {
		case errors.Is(err, io.EOF) && len(b) == 0:
			return nil, nil, &BundleError{Line: n, What: "the bundle ends early"}
		case errors.Is(err, io.EOF):
			return nil, nil, &BundleError{Line: n, What: "the last line has no newline"}
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, nil, &BundleError{Line: n, What: "line too long"}
		case err != nil:
			return nil, nil, err
		}
		var l bundleLine
		if err := json.Unmarshal(b[:len(b)-1], &l); err != nil {
			return nil, nil, &BundleError{Line: n, What: "not a JSON object"}
		}
		return b, &l, nil
	}
	bad := func(idx int64, format string, args ...any) error {
		return &BundleError{Line: n, Index: idx, What: fmt.Sprintf(format, args...)}
	}

	raw, h, err := next()
	if err != nil {
		return nil, err
	}
	// Cloned: the line's buffer is reused for the next one.
	s := &BundleSummary{Chain: strings.Clone(h.Chain), FromIdx: h.FromIdx, ToIdx: h.ToIdx, Entries: h.Entries,
		Checkpoints: h.Checkpoints, PublicKey: strings.Clone(h.PublicKey)}
	var prev [HashSize]byte
	if d, err := hex.DecodeString(h.PrevHash); err == nil && len(d) == HashSize {
		copy(prev[:], d)
	}
	if h.Format != BundleFormat {
		return nil, bad(0, "format %q, want %q", h.Format, BundleFormat)
	}
	if !bytes.Equal(raw, appendHeader(nil, s, prev)) {
		return nil, bad(0, "the header is not in canonical form")
	}
	if s.Chain == "" || s.FromIdx < 1 || s.ToIdx < s.FromIdx || s.Entries != s.ToIdx-s.FromIdx+1 || s.Checkpoints < 0 {
		return nil, bad(0, "the header's chain, indexes or counts do not hold together")
	}
	// Without checkpoints the key signs nothing, so it must be empty: a
	// key no signature checks could be changed unnoticed.
	bundleKey, err := ParsePublicKey(s.PublicKey)
	switch {
	case s.Checkpoints > 0 && err != nil:
		return nil, bad(0, "public_key: %v", err)
	case s.Checkpoints == 0 && s.PublicKey != "":
		return nil, bad(0, "public_key given without checkpoints")
	}
	if pub != nil && s.Checkpoints > 0 && !bytes.Equal(pub, bundleKey) {
		return nil, bad(0, "the bundle's checkpoints are signed by %s, not by the key given", s.PublicKey)
	}

	// want is what the checkpoints signed for this chain: index -> hash,
	// and the line that said so.
	type signed struct {
		line int
		hash [HashSize]byte
	}
	want := map[int64]signed{}
	for range s.Checkpoints {
		raw, l, err := next()
		if err != nil {
			return nil, err
		}
		canonical, cerr := base64.StdEncoding.Strict().DecodeString(l.Checkpoint)
		sig, serr := base64.StdEncoding.Strict().DecodeString(l.Signature)
		if cerr != nil || serr != nil || !bytes.Equal(raw, appendCheckpointLine(nil, canonical, sig)) {
			return nil, bad(0, "not a checkpoint line in canonical form")
		}
		c := Checkpoint{ID: int64(n), PublicKey: bundleKey, Canonical: canonical, Signature: sig}
		at, heads, err := DecodeCheckpoint(canonical)
		if err != nil {
			return nil, bad(0, "checkpoint: %v", err)
		}
		c.SignedAt, c.Heads = at, heads
		if err := c.Check(nil); err != nil {
			return nil, bad(0, "checkpoint: %v", err)
		}
		found := false
		for _, hd := range heads {
			if hd.Chain == s.Chain && hd.Index >= s.FromIdx-1 && hd.Index <= s.ToIdx {
				want[hd.Index] = signed{line: n, hash: hd.Hash}
				s.SignedUpTo = max(s.SignedUpTo, hd.Index)
				found = true
			}
		}
		if !found {
			return nil, bad(0, "the checkpoint signs no entry of the bundle")
		}
	}
	if w, ok := want[s.FromIdx-1]; ok && w.hash != prev {
		return nil, &BundleError{Line: 1, What: fmt.Sprintf("prev_hash is not the hash the checkpoint on line %d signed for idx %d", w.line, s.FromIdx-1)}
	}

	for idx := s.FromIdx; idx <= s.ToIdx; idx++ {
		raw, l, err := next()
		if err != nil {
			return nil, err
		}
		canonical, cerr := base64.StdEncoding.Strict().DecodeString(l.Canonical)
		hash, herr := hex.DecodeString(l.Hash)
		if cerr != nil || herr != nil || !bytes.Equal(raw, appendEntryLine(nil, l.Idx, canonical, hash)) {
			return nil, bad(idx, "not an entry line in canonical form")
		}
		if l.Idx != idx {
			return nil, bad(idx, "the line is idx %d", l.Idx)
		}
		e, err := Decode(canonical)
		if err != nil {
			return nil, bad(idx, "canonical: %v", err)
		}
		if e.Chain != s.Chain || e.Index != idx {
			return nil, bad(idx, "the canonical entry is chain %q idx %d", e.Chain, e.Index)
		}
		if err := e.Validate(); err != nil {
			return nil, bad(idx, "the canonical entry is not valid: %v", err)
		}
		sum := Hash(prev, canonical)
		if !bytes.Equal(hash, sum[:]) {
			return nil, bad(idx, "hash is not SHA-256(previous hash || canonical)")
		}
		if w, ok := want[idx]; ok && w.hash != sum {
			return nil, bad(idx, "the checkpoint on line %d signed another hash for this entry", w.line)
		}
		prev = sum
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		n++
		return nil, bad(0, "data after the last entry")
	}
	return s, nil
}
