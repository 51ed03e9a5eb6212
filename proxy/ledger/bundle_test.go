package ledger_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/ledger"
)

func TestBundle_VerifiesOffline_AnyByteChangedFailsNamingTheLine(t *testing.T) {
	db := migrated(t)
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub := key.Public().(ed25519.PublicKey)
	store(t, db, call("acme", 1), call("acme", 2), call("globex", 103))
	if _, err := ledger.WriteCheckpoint(t.Context(), db, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The middle of the chain: entries 3 and 4, appended after mark; the
	// checkpoint signed idx 2, the one before the run.
	time.Sleep(2 * time.Millisecond) // created_at is clock_timestamp(): mark must fall between
	mark := time.Now()
	store(t, db, call("acme", 3), call("acme", 4))
	if _, err := ledger.WriteCheckpoint(t.Context(), db, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	store(t, db, call("acme", 5))

	var whole, part bytes.Buffer
	s, err := ledger.Export(t.Context(), db, &whole, ledger.ExportOptions{Chain: "acme"})
	if err != nil || s.FromIdx != 1 || s.ToIdx != 5 || s.Checkpoints != 2 {
		t.Fatalf("export %+v, %v", s, err)
	}
	got, err := ledger.VerifyBundle(bytes.NewReader(whole.Bytes()), pub)
	if err != nil || got.Entries != 5 || got.SignedUpTo != 4 {
		t.Fatalf("VerifyBundle = %+v, %v", got, err)
	}
	s, err = ledger.Export(t.Context(), db, &part, ledger.ExportOptions{Chain: "acme", From: mark})
	if err != nil || s.FromIdx != 3 || s.ToIdx != 5 {
		t.Fatalf("export from mark: %+v, %v", s, err)
	}
	if _, err := ledger.VerifyBundle(bytes.NewReader(part.Bytes()), pub); err != nil {
		t.Fatalf("the range: %v", err)
	}
	if _, err := ledger.VerifyBundle(bytes.NewReader(part.Bytes()), ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("a bundle signed by another key passed with the key pinned")
	}

	// Every byte of the range's bundle, changed three ways: each fails,
	// naming the line it is on (or, for a newline, the one after). A
	// header field is cross-checked where it is used: the chain and
	// prev_hash by the first entry, the key by the first checkpoint.
	b := part.Bytes()
	line := 1
	for i := range b {
		for _, flip := range []byte{0x01, 0x20, 0x80} {
			changed := bytes.Clone(b)
			changed[i] ^= flip
			_, err := ledger.VerifyBundle(bytes.NewReader(changed), pub)
			var be *ledger.BundleError
			if !errors.As(err, &be) {
				t.Fatalf("byte %d (line %d) ^ %#x: VerifyBundle = %v, want a BundleError", i, line, flip, err)
			}
			// A changed newline moves the lines: the failure is on this
			// line or the next.
			if line > 1 && be.Line != line && be.Line != line+1 || be.Line < line {
				t.Fatalf("byte %d ^ %#x is on line %d; the error says %v", i, flip, line, err)
			}
		}
		if b[i] == '\n' {
			line++
		}
	}
	// Truncated, or a line dropped: fails too.
	lines := strings.SplitAfter(part.String(), "\n")
	for _, cut := range []string{part.String()[:part.Len()-1], strings.Join(append(append([]string{}, lines[:2]...), lines[3:]...), "")} {
		if _, err := ledger.VerifyBundle(strings.NewReader(cut), pub); err == nil {
			t.Fatal("a shortened bundle passed")
		}
	}
}
