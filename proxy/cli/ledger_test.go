package cli_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/ledger"
)

// Not parallel: the commands read the environment.
func TestAuditKeygen_FileIsPrivate_PubkeyPrintsItsPublicKey(t *testing.T) {
	t.Setenv(ledger.EnvKey, "")
	keyFile := filepath.Join(t.TempDir(), "ledger.key")
	out := ok(t, "", "audit", "keygen", "-out", keyFile)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v: want mode 0600", fi, err)
	}
	pub := strings.TrimSpace(ok(t, "", "audit", "pubkey", "-key-file", keyFile))
	if !strings.Contains(out, "public key: "+pub) || len(pub) != 44 {
		t.Fatalf("keygen said %q, pubkey %q", out, pub)
	}
	if _, _, err := run(t, "", "audit", "keygen", "-out", keyFile); err == nil {
		t.Fatal("keygen overwrote an existing key file")
	}
	seed, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(ledger.EnvKey, string(seed))
	if got := strings.TrimSpace(ok(t, "", "audit", "pubkey")); got != pub {
		t.Fatalf("pubkey from $%s = %q, want %q", ledger.EnvKey, got, pub)
	}
	t.Setenv(ledger.EnvKey, "")
	if _, _, err := run(t, "", "audit", "pubkey"); !errors.Is(err, ledger.ErrNoKey) {
		t.Fatalf("pubkey without a key: %v, want ErrNoKey", err)
	}
}

// Not parallel: the commands read the environment.
func TestAuditVerifyAndExport_AgainstTheDatabase(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	t.Setenv(cli.EnvDatabaseURL, url)
	t.Setenv(ledger.EnvKey, "")
	ok(t, "", "migrate")
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for i := range 3 {
		err := pgx.BeginFunc(t.Context(), conn, func(tx pgx.Tx) error {
			return ledger.Append(t.Context(), tx, ledger.Entry{Chain: ledger.SystemChain, Kind: ledger.KindAdmin, Admin: ledger.Admin{
				RequestID: "req-" + string(rune('a'+i)), Time: time.Now(), Actor: "op", Action: "tenant.create", Tenant: "acme", Target: "acme",
			}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	keyFile := filepath.Join(t.TempDir(), "ledger.key")
	ok(t, "", "audit", "keygen", "-out", keyFile)
	key, err := ledger.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.WriteCheckpoint(t.Context(), conn, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	if out := ok(t, "", "audit", "verify", "-key-file", keyFile); !strings.Contains(out, "ledger OK: 1 chains, 3 entries (0 calls, 3 admin)") ||
		!strings.Contains(out, "1 checkpoints (key pinned), 3 entries signed") {
		t.Fatalf("verify: %s", out)
	}
	bundle := filepath.Join(t.TempDir(), "system.bundle")
	ok(t, "", "audit", "export", "-tenant", ledger.SystemChain, "-o", bundle)
	if out := ok(t, "", "audit", "verify", "-bundle", bundle, "-key-file", keyFile); !strings.Contains(out, "bundle OK") {
		t.Fatalf("verify -bundle: %s", out)
	}

	if _, err := conn.Exec(t.Context(), `DELETE FROM loom.ledger_entries WHERE idx = 2`); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "", "audit", "verify", "-key-file", keyFile)
	if !errors.Is(err, cli.ErrLedgerBad) || !strings.HasPrefix(out, `BAD chain "_system" idx 2: missing`) {
		t.Fatalf("a deleted row: %v\n%s", err, out)
	}
}
