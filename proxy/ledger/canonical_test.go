package ledger_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loom-gateway/loom/proxy/ledger"
)

var update = flag.Bool("update", false, "rewrite testdata/vector.txt")

func txt(s string) pgtype.Text { return pgtype.Text{String: s, Valid: true} }
func i8(n int64) pgtype.Int8   { return pgtype.Int8{Int64: n, Valid: true} }

// vectorStart is the start of the test vector's first call.
var vectorStart = time.Date(2026, 12, 5, 20, 15, 30, 123456789, time.UTC)

// vectorCall is the test vector's call n of tenant acme: every field set
// in the first, the optional ones NULL in the second.
func vectorCall(n int) ledger.Entry {
	c := ledger.Call{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: fmt.Sprintf("00f067aa0ba902b%d", n),
		Tenant: "acme", StatusCode: "ok", Start: vectorStart.Add(time.Duration(n) * time.Second),
	}
	if n == 1 {
		c.KeyID, c.InstanceID, c.RunID, c.Seq, c.Attempt = txt("acme-key"), txt("inst-1"), txt("run-1"), i8(41), i8(1)
		c.RequestModel, c.ResponseModel, c.Deployment, c.Provider = txt("gpt-4o"), txt("gpt-4o-2024-08-06"), txt("openai-main"), txt("openai")
		c.InputTokens, c.OutputTokens, c.CacheReadTokens, c.CacheCreationTokens = i8(100), i8(20), i8(64), i8(0)
		c.ReasoningTokens, c.TotalTokens = i8(8), i8(120)
		c.Cost, c.CostCurrency, c.CostPriceID = txt("0.000345"), txt("USD"), txt("gpt-4o-2024")
		c.HTTPStatus = i8(200)
		c.End = pgtype.Timestamptz{Time: c.Start.Add(1500 * time.Millisecond), Valid: true}
	} else {
		c.StatusCode, c.HTTPStatus, c.ErrorType = "error", i8(500), txt("500")
	}
	return ledger.Entry{Chain: "acme", Kind: ledger.KindCall, Call: c}
}

func vectorAdmin() ledger.Entry {
	return ledger.Entry{Chain: ledger.SystemChain, Kind: ledger.KindAdmin, Admin: ledger.Admin{
		RequestID: "req-1", Time: vectorStart, Actor: "admin-token-1", Action: "key.create", Tenant: "acme",
		Target: "acme-key", Before: nil, After: []byte(`{"id":"acme-key","prefix":"sk-loom-abcd","rpm":0}`),
	}}
}

// The README's test vector: two call entries of chain acme and one admin
// entry of the system chain, their canonical bytes and hashes, as a
// re-implementation must compute them.
func TestCanonical_TestVector_MatchesTestdata(t *testing.T) {
	var out strings.Builder
	out.WriteString("# The ledger's test vector (README, \"Audit ledger\"); the entries are built in\n" +
		"# proxy/ledger/canonical_test.go. Regenerate: go test ./proxy/ledger -run TestCanonical_TestVector -update\n")
	chains := [][]ledger.Entry{{vectorCall(1), vectorCall(2)}, {vectorAdmin()}}
	for _, chain := range chains {
		prev := ledger.ZeroHash
		for i, e := range chain {
			e.Index = int64(i + 1)
			c := e.AppendCanonical(nil)
			prev = ledger.Hash(prev, c)
			fmt.Fprintf(&out, "%s %d canonical %x\n%s %d hash %x\n", e.Chain, e.Index, c, e.Chain, e.Index, prev)
		}
	}
	path := filepath.Join("testdata", "vector.txt")
	if *update {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("the encoding changed; it is a contract (a new one needs a new format):\ngot\n%s\nwant\n%s", out.String(), want)
	}
	// The first bytes spell the format, as the README shows.
	e := vectorCall(1)
	e.Index = 1
	if got := hex.EncodeToString(e.AppendCanonical(nil)[:24]); got != "01"+"00000013"+hex.EncodeToString([]byte(ledger.Format)) {
		t.Errorf("canonical starts %s", got)
	}
}

func TestDecode_RoundTripsEveryKind(t *testing.T) {
	for _, e := range []ledger.Entry{vectorCall(1), vectorCall(2), vectorAdmin()} {
		e.Index = 7
		b := e.AppendCanonical(nil)
		got, err := ledger.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		// Times come back in UTC with microseconds.
		want := e
		want.Call.Start = ledger.TruncateTime(want.Call.Start)
		if want.Call.End.Valid {
			want.Call.End.Time = ledger.TruncateTime(want.Call.End.Time)
		}
		want.Admin.Time = ledger.TruncateTime(want.Admin.Time)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
		}
		if !bytes.Equal(got.AppendCanonical(nil), b) {
			t.Error("re-encoding the decoded entry gives other bytes")
		}
	}
}

// Each entry has one encoding: Decode refuses any other spelling of the
// same values, and anything truncated or extended.
func TestDecode_RefusesOtherSpellings(t *testing.T) {
	e := vectorCall(1)
	e.Index = 3
	good := e.AppendCanonical(nil)
	item := func(s string) []byte {
		return append([]byte{1, 0, 0, 0, byte(len(s))}, s...)
	}
	idx := bytes.Index(good, item("3"))
	tests := []struct {
		name string
		b    []byte
	}{
		{"truncated", good[:len(good)-1]},
		{"a byte more", append(bytes.Clone(good), 0)},
		{"unknown tag", append(append(bytes.Clone(good[:idx]), 2), good[idx+1:]...)},
		{"leading zero", append(append(bytes.Clone(good[:idx]), item("03")...), good[idx+6:]...)},
		{"plus sign", append(append(bytes.Clone(good[:idx]), item("+3")...), good[idx+6:]...)},
		{"idx 0", append(append(bytes.Clone(good[:idx]), item("0")...), good[idx+6:]...)},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ledger.Decode(tt.b); !errors.Is(err, ledger.ErrMalformed) {
				t.Errorf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
	// A time spelled otherwise (no microseconds) is refused too.
	start := []byte(e.Call.Start.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z"))
	at := bytes.Index(good, start)
	other := []byte(e.Call.Start.UTC().Format(time.RFC3339))
	b := append(bytes.Clone(good[:at-4]), append([]byte{0, 0, 0, byte(len(other))}, other...)...)
	b = append(b, good[at+len(start):]...)
	if _, err := ledger.Decode(b); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("RFC 3339 time: Decode = %v, want ErrMalformed", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, e := range []ledger.Entry{vectorCall(1), vectorCall(2), vectorAdmin()} {
		e.Index = 1
		f.Add(e.AppendCanonical(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ledger.Decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.AppendCanonical(nil), b) {
			t.Fatalf("%x decodes, but re-encodes as %x", b, e.AppendCanonical(nil))
		}
	})
}

// The exporter encodes and hashes an entry per stored call: encoding into
// a reused buffer allocates nothing.
func TestAppendCanonical_ReusedBuffer_NoAllocations(t *testing.T) {
	for _, e := range []ledger.Entry{vectorCall(1), vectorCall(2), vectorAdmin()} {
		e.Index = 12345
		buf := make([]byte, 0, 1024)
		if n := testing.AllocsPerRun(100, func() { buf = e.AppendCanonical(buf[:0]) }); n != 0 {
			t.Errorf("%s entry: %v allocations per encoding, want 0", e.Kind, n)
		}
	}
}

func BenchmarkAppendCanonical(b *testing.B) {
	for _, e := range []ledger.Entry{vectorCall(1), vectorAdmin()} {
		b.Run(string(e.Kind), func(b *testing.B) {
			e.Index = 12345
			var buf []byte
			prev := ledger.ZeroHash
			b.ReportAllocs()
			for b.Loop() {
				buf = e.AppendCanonical(buf[:0])
				prev = ledger.Hash(prev, buf)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
