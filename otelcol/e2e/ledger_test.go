package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/ledger"
)

// checkLedger waits for n ledger entries and verifies the chains against
// the spans.
func checkLedger(t *testing.T, db *pgxpool.Pool, n int64) {
	t.Helper()
	waitRows(t, db, n, 60*time.Second, `select count(*) from loom.ledger_entries`)
	rep, err := ledger.Verify(t.Context(), db, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Entries != n || rep.SpansChecked != n {
		t.Fatalf("ledger: %+v", rep)
	}
}

// plan3 is plan over three tenants: every tenant gets every kind of call.
func plan3(n int) []planned {
	tenants := []string{"acme", "globex", "initech"}
	out := make([]planned, n)
	for i := range out {
		out[i] = planned{n: i, tenant: tenants[i%3], kind: mix[i%len(mix)]}
	}
	return out
}

// loom runs the loom command in process and returns its standard output.
func loom(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Run(t.Context(), args, cli.Stdio{In: strings.NewReader(""), Out: &out, Err: &errOut})
	if err != nil && !errors.Is(err, cli.ErrLedgerBad) {
		t.Fatalf("loom %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), err
}

// ledgerCollector is a collector that checkpoints the ledger every second
// with a new key; it returns the key file.
func ledgerCollector(t *testing.T, dbURL string) (*collector, string) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "ledger.key")
	if _, err := loom(t, "audit", "keygen", "-out", keyFile); err != nil {
		t.Fatal(err)
	}
	return startCollectorWith(t, dbURL, fmt.Sprintf("    ledger: {checkpoint_interval: 1s, signing_key_file: %q}\n", keyFile)), keyFile
}

// The test: 2,000 mixed calls of three tenants through the real
// collector, then `loom audit verify` passes; in fresh copies of the
// database, a token count edited in loom.spans, a ledger row deleted, two
// rows swapped and a forged row appended are each named as the first bad
// entry; the exported bundle verifies offline and fails when one byte
// changes.
func TestLedger_2000CallsThreeTenants_VerifyPasses_EachTamperingNamed(t *testing.T) {
	pg := pgtest.Start(t)
	dbURL := pgtest.Database(t, pg)
	col, keyFile := ledgerCollector(t, dbURL)
	g := startGateway(t, col.grpc)
	calls := plan3(2000)
	g.run(t, calls, 16, nil)
	g.flush(60 * time.Second)
	db := connect(t, dbURL)
	checkNothingLost(t, db, g.tracer.InstanceID(), int64(len(calls)), 60*time.Second)
	waitRows(t, db, int64(len(calls)), 60*time.Second, `select count(*) from loom.ledger_entries`)
	// Stopping signs the heads one last time, and leaves the database
	// free to be copied.
	col.stop()
	db.Close()

	pub, _ := loom(t, "audit", "pubkey", "-key-file", keyFile)
	pub = strings.TrimSpace(pub)
	t.Setenv(cli.EnvDatabaseURL, dbURL)
	out, err := loom(t, "audit", "verify", "-pubkey", pub)
	if err != nil || !strings.HasPrefix(out, "ledger OK: 3 chains, 2000 entries (2000 calls, 0 admin), 2000 span rows matched") ||
		!strings.Contains(out, "(key pinned), 2000 entries signed") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if out, err := loom(t, "audit", "verify", "-tenant", "globex", "-pubkey", pub); err != nil || !strings.Contains(out, "1 chains") {
		t.Fatalf("verify -tenant globex: %v\n%s", err, out)
	}

	// The bundle: verifies offline, and not with one byte changed.
	bundle := filepath.Join(t.TempDir(), "acme.bundle")
	if _, err := loom(t, "audit", "export", "-tenant", "acme", "-o", bundle); err != nil {
		t.Fatal(err)
	}
	if out, err := loom(t, "audit", "verify", "-bundle", bundle, "-pubkey", pub); err != nil || !strings.Contains(out, "667 entries") {
		t.Fatalf("verify -bundle: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	at := len(b) / 2
	line := bytes.Count(b[:at], []byte("\n")) + 1
	b[at] ^= 0x01
	changed := filepath.Join(t.TempDir(), "changed.bundle")
	if err := os.WriteFile(changed, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := loom(t, "audit", "verify", "-bundle", changed, "-pubkey", pub); !errors.Is(err, cli.ErrLedgerBad) ||
		!strings.Contains(out, fmt.Sprintf("bundle line %d ", line)) && !strings.Contains(out, fmt.Sprintf("bundle line %d:", line)) {
		t.Fatalf("a byte changed on line %d: %v\n%s", line, err, out)
	}

	// The tampering, each in a fresh copy of the database.
	admin, err := pgx.Connect(t.Context(), pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	original := strings.TrimPrefix(u.Path, "/")
	copies := 0
	tampered := func(name string, tamper func(ctx context.Context, tx pgx.Tx) error) string {
		t.Helper()
		copies++
		copyName := fmt.Sprintf("%s_copy%d", original, copies)
		if _, err := admin.Exec(t.Context(), fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", copyName, original)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		copyURL := pg.URLFor(copyName)
		conn, err := pgx.Connect(t.Context(), copyURL)
		if err != nil {
			t.Fatal(err)
		}
		if err := pgx.BeginFunc(t.Context(), conn, func(tx pgx.Tx) error { return tamper(t.Context(), tx) }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		conn.Close(context.Background())
		t.Setenv(cli.EnvDatabaseURL, copyURL)
		out, err := loom(t, "audit", "verify", "-pubkey", pub)
		if !errors.Is(err, cli.ErrLedgerBad) {
			t.Fatalf("%s: verify = %v, want ErrLedgerBad\n%s", name, err, out)
		}
		first, _, _ := strings.Cut(out, "\n")
		t.Logf("%s: %s", name, first)
		return first
	}
	exec := func(sql string, args ...any) func(ctx context.Context, tx pgx.Tx) error {
		return func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql, args...)
			return err
		}
	}
	for _, tc := range []struct {
		name   string
		tamper func(ctx context.Context, tx pgx.Tx) error
		want   string
	}{
		{"(a) a token count edited in loom.spans", exec(`UPDATE loom.spans s SET input_tokens = coalesce(s.input_tokens, 0) + 1
FROM loom.ledger_entries e WHERE e.chain = 'acme' AND e.idx = 500 AND s.trace_id = substr(e.ref, 1, 32) AND s.span_id = substr(e.ref, 33)`),
			`BAD chain "acme" idx 500: input_tokens: the ledger says`},
		{"(b) a ledger row deleted", exec(`DELETE FROM loom.ledger_entries WHERE chain = 'globex' AND idx = 300`),
			`BAD chain "globex" idx 300: missing: the chain goes on at idx 301`},
		{"(c) two rows swapped", exec(`UPDATE loom.ledger_entries SET idx = 100000 WHERE chain = 'initech' AND idx = 100;
UPDATE loom.ledger_entries SET idx = 100 WHERE chain = 'initech' AND idx = 200;
UPDATE loom.ledger_entries SET idx = 200 WHERE chain = 'initech' AND idx = 100000`),
			`BAD chain "initech" idx 100: the row holds the canonical entry of chain "initech" idx 200`},
		{"(d) a forged row appended", forge, `BAD chain "acme" idx 668: its span (trace feedfacefeedfacefeedfacefeedface`},
	} {
		if got := tampered(tc.name, tc.tamper); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: verify's first line\n  %s\nwant it to start\n  %s", tc.name, got, tc.want)
		}
	}
}

// forge appends to acme's chain an entry made the way Loom makes them,
// hash and all, for a call that never happened.
func forge(ctx context.Context, tx pgx.Tx) error {
	var idx int64
	var canonical, hash []byte
	if err := tx.QueryRow(ctx, `SELECT idx, canonical, hash FROM loom.ledger_entries WHERE chain = 'acme' ORDER BY idx DESC LIMIT 1`).
		Scan(&idx, &canonical, &hash); err != nil {
		return err
	}
	e, err := ledger.Decode(canonical)
	if err != nil {
		return err
	}
	e.Index = idx + 1
	e.Call.TraceID = strings.Repeat("feedface", 4)
	e.Call.InputTokens.Int64 = 1
	forged := e.AppendCanonical(nil)
	var prev [ledger.HashSize]byte
	copy(prev[:], hash)
	sum := ledger.Hash(prev, forged)
	_, err = tx.Exec(ctx, `INSERT INTO loom.ledger_entries (chain, idx, kind, ref, tenant_id, canonical, prev_hash, hash)
VALUES ('acme', $1, 'call', $2, 'acme', $3, $4, $5)`, e.Index, e.Ref(), forged, hash, sum[:])
	return err
}
