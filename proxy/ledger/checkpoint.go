package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/schema"
)

// A checkpoint's canonical encoding, the bytes its Ed25519 signature
// covers, uses the entries' items:
//
//	checkpoint = item("loom.ledger.checkpoint/1") item(signed_at) item(n)
//	             (item(chain) item(idx) item(hex(hash)))...   n times
//
// with the chains in ascending byte order, each once, idx >= 1, the hash as
// 64 lowercase hex digits.

// CheckpointFormat is the first item of a checkpoint's canonical bytes.
const CheckpointFormat = "loom.ledger.checkpoint/1"

// EnvKey names the environment variable that holds the signing key when no
// key file is given: the base64 of a 32-byte Ed25519 seed.
const EnvKey = "LOOM_LEDGER_KEY"

// Head is a chain's last entry at some moment.
type Head struct {
	Chain string
	Index int64
	Hash  [HashSize]byte
}

// Checkpoint is a signed statement of the heads of all chains.
type Checkpoint struct {
	ID        int64
	SignedAt  time.Time
	Heads     []Head // chains in ascending byte order
	PublicKey ed25519.PublicKey
	Canonical []byte
	Signature []byte
}

// EncodeCheckpoint is the canonical encoding of heads at signedAt; heads
// must be sorted by chain (bytewise) with no chain twice.
func EncodeCheckpoint(signedAt time.Time, heads []Head) []byte {
	b := appendItem(nil, some(CheckpointFormat))
	b = appendItem(b, some(formatTime(signedAt)))
	b = appendItem(b, some(strconv.Itoa(len(heads))))
	for _, h := range heads {
		b = appendItem(b, some(h.Chain))
		b = appendItem(b, some(strconv.FormatInt(h.Index, 10)))
		b = appendItem(b, some(hex.EncodeToString(h.Hash[:])))
	}
	return b
}

// DecodeCheckpoint parses a checkpoint's canonical bytes, accepting only
// what EncodeCheckpoint writes.
func DecodeCheckpoint(b []byte) (time.Time, []Head, error) {
	r := reader{b: b}
	next := func() (string, error) {
		v := r.item()
		if r.err != nil {
			return "", fmt.Errorf("%w: %w", ErrMalformed, r.err)
		}
		if !v.ok {
			return "", fmt.Errorf("%w: %w", ErrMalformed, errNull)
		}
		return v.s, nil
	}
	format, err := next()
	if err != nil {
		return time.Time{}, nil, err
	}
	if format != CheckpointFormat {
		return time.Time{}, nil, fmt.Errorf("%w: checkpoint format %q", ErrMalformed, format)
	}
	s, err := next()
	if err != nil {
		return time.Time{}, nil, err
	}
	at, err := parseTime(s)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("%w: signed_at: %w", ErrMalformed, err)
	}
	if s, err = next(); err != nil {
		return time.Time{}, nil, err
	}
	n, err := parseInt(s)
	if err != nil || n < 0 || n > int64(len(b)) {
		return time.Time{}, nil, fmt.Errorf("%w: head count %q", ErrMalformed, s)
	}
	heads := make([]Head, 0, n)
	for i := range n {
		var h Head
		var idx, hx string
		if h.Chain, err = next(); err == nil {
			if idx, err = next(); err == nil {
				hx, err = next()
			}
		}
		if err != nil {
			return time.Time{}, nil, err
		}
		if h.Index, err = parseInt(idx); err != nil || h.Index < 1 {
			return time.Time{}, nil, fmt.Errorf("%w: head %d: idx %q", ErrMalformed, i, idx)
		}
		d, err := hex.DecodeString(hx)
		if err != nil || len(d) != HashSize || hex.EncodeToString(d) != hx {
			return time.Time{}, nil, fmt.Errorf("%w: head %d: hash %q", ErrMalformed, i, hx)
		}
		copy(h.Hash[:], d)
		if i > 0 && heads[i-1].Chain >= h.Chain {
			return time.Time{}, nil, fmt.Errorf("%w: head %d: chain %q out of order", ErrMalformed, i, h.Chain)
		}
		heads = append(heads, h)
	}
	if len(r.b) != 0 {
		return time.Time{}, nil, fmt.Errorf("%w: %d bytes after the last head", ErrMalformed, len(r.b))
	}
	return at, heads, nil
}

// ErrBadSignature is returned for a checkpoint whose signature does not
// hold, or that another key signed.
var ErrBadSignature = errors.New("checkpoint signature does not hold")

// Check verifies the checkpoint's signature over its canonical bytes with
// pub (the checkpoint's own key when pub is nil) and that Heads and
// SignedAt are what the canonical bytes say.
func (c *Checkpoint) Check(pub ed25519.PublicKey) error {
	if pub == nil {
		pub = c.PublicKey
	}
	if !bytes.Equal(pub, c.PublicKey) {
		return fmt.Errorf("%w: signed by key %s, not %s", ErrBadSignature, EncodePublicKey(c.PublicKey), EncodePublicKey(pub))
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, c.Canonical, c.Signature) {
		return ErrBadSignature
	}
	at, heads, err := DecodeCheckpoint(c.Canonical)
	if err != nil {
		return err
	}
	if !at.Equal(c.SignedAt) || !slices.Equal(heads, c.Heads) {
		return fmt.Errorf("%w: the row's signed_at or heads differ from the signed bytes", ErrBadSignature)
	}
	return nil
}

// checkpointLock is the advisory lock a checkpoint is written under: of
// several collectors, one signs at a time and the others skip.
const checkpointLock int64 = 0x6c6f6f6d_6c636b70 // "loomlckp"

// WriteCheckpoint signs the heads of all chains as of now with key and
// stores the checkpoint. It writes nothing, and returns nil, when there is
// no chain yet, when the heads are those of the last checkpoint, or when
// another process is writing one at this moment.
func WriteCheckpoint(ctx context.Context, db schema.DB, key ed25519.PrivateKey, now time.Time) (*Checkpoint, error) {
	var out *Checkpoint
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", checkpointLock).Scan(&locked); err != nil || !locked {
			return err
		}
		heads, err := readHeads(ctx, tx)
		if err != nil || len(heads) == 0 {
			return err
		}
		var last []byte
		err = tx.QueryRow(ctx, "SELECT canonical FROM loom.ledger_checkpoints ORDER BY id DESC LIMIT 1").Scan(&last)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if last != nil {
			if _, prev, err := DecodeCheckpoint(last); err == nil && slices.Equal(prev, heads) {
				return nil
			}
		}
		c := &Checkpoint{SignedAt: TruncateTime(now), Heads: heads, PublicKey: key.Public().(ed25519.PublicKey)}
		c.Canonical = EncodeCheckpoint(c.SignedAt, heads)
		c.Signature = ed25519.Sign(key, c.Canonical)
		err = tx.QueryRow(ctx, `INSERT INTO loom.ledger_checkpoints (signed_at, public_key, canonical, signature)
VALUES ($1, $2, $3, $4) RETURNING id`, c.SignedAt, []byte(c.PublicKey), c.Canonical, c.Signature).Scan(&c.ID)
		out = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger checkpoint: %w", err)
	}
	return out, nil
}

// readHeads is every chain's head with at least one entry, sorted by chain
// bytewise (not by the database's collation).
func readHeads(ctx context.Context, q pgx.Tx) ([]Head, error) {
	rows, err := q.Query(ctx, "SELECT chain, idx, hash FROM loom.ledger_heads WHERE idx > 0")
	if err != nil {
		return nil, err
	}
	var heads []Head
	var h Head
	var hash []byte
	_, err = pgx.ForEachRow(rows, []any{&h.Chain, &h.Index, &hash}, func() error {
		if len(hash) != HashSize {
			return fmt.Errorf("head of chain %q: hash of %d bytes", h.Chain, len(hash))
		}
		copy(h.Hash[:], hash)
		heads = append(heads, h)
		return nil
	})
	slices.SortFunc(heads, func(a, b Head) int { return strings.Compare(a.Chain, b.Chain) })
	return heads, err
}

// ErrNoKey is returned where a signing key is needed and none is
// configured.
var ErrNoKey = errors.New("no ledger signing key: give a key file or set " + EnvKey)

// ParseKey reads a signing key: the base64 (standard or URL alphabet,
// padded or not) of a 32-byte Ed25519 seed, surrounding space ignored.
func ParseKey(s string) (ed25519.PrivateKey, error) {
	seed, err := decodeBase64(strings.TrimSpace(s))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("ledger key: want the base64 of a %d-byte Ed25519 seed", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// LoadKey reads the signing key from file, or from $LOOM_LEDGER_KEY when
// file is "". It returns ErrNoKey when there is neither.
func LoadKey(file string) (ed25519.PrivateKey, error) {
	if file == "" {
		s := os.Getenv(EnvKey)
		if s == "" {
			return nil, ErrNoKey
		}
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", EnvKey, err)
		}
		return k, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}

// WriteKeyFile makes a new signing key in a new file (mode 0600; an
// existing file is never overwritten) and returns its public key.
func WriteKeyFile(path string) (ed25519.PublicKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(seed) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), nil
}

// EncodePublicKey is how public keys are printed: standard base64.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// ParsePublicKey reads a public key as EncodePublicKey writes it (any
// base64 alphabet, padded or not).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeBase64(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key: want the base64 of %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}
