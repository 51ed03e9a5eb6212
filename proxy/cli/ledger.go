package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/ledger"
)

// ErrLedgerBad is what `loom audit verify` returns when it found a bad
// entry or checkpoint: the exit status says so without parsing the output.
var ErrLedgerBad = errors.New("the audit ledger does not verify")

// auditVerify is `loom audit verify`: the chains in Postgres, or a bundle
// offline.
func auditVerify(ctx context.Context, args []string, std Stdio) error {
	fs := flag.NewFlagSet("loom audit verify", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	path := fs.String("config", "", "configuration file whose console (or store) section names the database (default: $"+EnvDatabaseURL+")")
	tenant := fs.String("tenant", "", "verify this tenant's chain only ("+ledger.SystemChain+": the admin actions)")
	from := fs.String("from", "", "only entries appended at or after this time (RFC 3339 or YYYY-MM-DD)")
	to := fs.String("to", "", "only entries appended before this time")
	bundle := fs.String("bundle", "", "verify this bundle (from loom audit export) offline, without a database")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pin := pinFlags(fs)
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(std.Err, "loom audit verify: unexpected argument %q\n\n%s", fs.Arg(0), usage)
		return ErrUsage
	}
	pub, err := pin()
	if err != nil {
		return err
	}
	if pub == nil {
		fmt.Fprintln(std.Err, "note: no public key given (-pubkey, -key-file or $"+ledger.EnvKey+"): checkpoints are checked against the key stored beside them, which proves less")
	}
	if *bundle != "" {
		return verifyBundle(*bundle, pub, *asJSON, std.Out)
	}
	opts := ledger.VerifyOptions{Chain: *tenant, PublicKey: pub}
	if opts.From, err = parseWhen("from", *from); err != nil {
		return err
	}
	if opts.To, err = parseWhen("to", *to); err != nil {
		return err
	}
	conn, err := connectSpans(ctx, *path, "audit verify")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	rep, err := ledger.Verify(ctx, conn, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		fmt.Fprintf(std.Out, "%s\n", b)
	} else if rep.OK() {
		pinned := "not pinned"
		if rep.KeyPinned {
			pinned = "key pinned"
		}
		fmt.Fprintf(std.Out, "ledger OK: %d chains, %d entries (%d calls, %d admin), %d span rows matched, %d past retention, %d checkpoints (%s), %d entries signed\n",
			rep.Chains, rep.Entries, rep.Calls, rep.Admin, rep.SpansChecked, rep.SpansPastRetention, rep.Checkpoints, pinned, rep.SignedEntries)
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(std.Out, "BAD %s\n", p)
		}
	}
	if !rep.OK() {
		return fmt.Errorf("%w: first bad: %s", ErrLedgerBad, rep.Problems[0])
	}
	return nil
}

func verifyBundle(path string, pub ed25519.PublicKey, asJSON bool, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := ledger.VerifyBundle(f, pub)
	if err != nil {
		if be := (*ledger.BundleError)(nil); errors.As(err, &be) {
			fmt.Fprintf(stdout, "BAD %s: %s\n", path, be)
			return fmt.Errorf("%w: %s: %w", ErrLedgerBad, path, err)
		}
		return err
	}
	if asJSON {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(stdout, "bundle OK: chain %q idx %d-%d, %d entries, %d checkpoints, signed up to idx %d\n",
		s.Chain, s.FromIdx, s.ToIdx, s.Entries, s.Checkpoints, s.SignedUpTo)
	return nil
}

// auditExport is `loom audit export`: one chain's run as a bundle.
func auditExport(ctx context.Context, args []string, std Stdio) error {
	fs := flag.NewFlagSet("loom audit export", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	path := fs.String("config", "", "configuration file whose console (or store) section names the database (default: $"+EnvDatabaseURL+")")
	tenant := fs.String("tenant", "", "the tenant whose chain to export (required; "+ledger.SystemChain+": the admin actions)")
	from := fs.String("from", "", "only entries appended at or after this time (RFC 3339 or YYYY-MM-DD)")
	to := fs.String("to", "", "only entries appended before this time")
	out := fs.String("o", "", "write the bundle to this file instead of standard output")
	pin := pinFlags(fs)
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if fs.NArg() != 0 || *tenant == "" {
		fmt.Fprintf(std.Err, "loom audit export: -tenant is required, and no arguments\n\n%s", usage)
		return ErrUsage
	}
	pub, err := pin()
	if err != nil {
		return err
	}
	opts := ledger.ExportOptions{Chain: *tenant, PublicKey: pub}
	if opts.From, err = parseWhen("from", *from); err != nil {
		return err
	}
	if opts.To, err = parseWhen("to", *to); err != nil {
		return err
	}
	conn, err := connectSpans(ctx, *path, "audit export")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	w := std.Out
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	s, err := ledger.Export(ctx, conn, w, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(std.Err, "exported chain %q idx %d-%d: %d entries, %d checkpoints\n", s.Chain, s.FromIdx, s.ToIdx, s.Entries, s.Checkpoints)
	return nil
}

// auditPubkey is `loom audit pubkey`: the signing key's public half.
func auditPubkey(args []string, std Stdio) error {
	fs := flag.NewFlagSet("loom audit pubkey", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	keyFile := fs.String("key-file", "", "the signing key file (default: $"+ledger.EnvKey+")")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return ErrUsage
	}
	key, err := ledger.LoadKey(*keyFile)
	if err != nil {
		return err
	}
	fmt.Fprintln(std.Out, ledger.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	return nil
}

// auditKeygen is `loom audit keygen -out FILE`: a new signing key.
func auditKeygen(args []string, std Stdio) error {
	fs := flag.NewFlagSet("loom audit keygen", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	out := fs.String("out", "", "the key file to create (mode 0600; never overwritten)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *out == "" {
		fmt.Fprintf(std.Err, "loom audit keygen: -out FILE is required\n\n%s", usage)
		return ErrUsage
	}
	pub, err := ledger.WriteKeyFile(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(std.Out, "wrote %s\npublic key: %s\n", *out, ledger.EncodePublicKey(pub))
	return nil
}

// pinFlags adds -pubkey and -key-file to fs; the function it returns reads
// the public key they (or $LOOM_LEDGER_KEY) give, nil for none.
func pinFlags(fs *flag.FlagSet) func() (ed25519.PublicKey, error) {
	pubkey := fs.String("pubkey", "", "the checkpoints' public key (base64, as loom audit pubkey prints it)")
	keyFile := fs.String("key-file", "", "take the public key from this signing key file")
	return func() (ed25519.PublicKey, error) {
		if *pubkey != "" {
			return ledger.ParsePublicKey(*pubkey)
		}
		key, err := ledger.LoadKey(*keyFile)
		switch {
		case errors.Is(err, ledger.ErrNoKey):
			return nil, nil
		case err != nil:
			return nil, err
		}
		return key.Public().(ed25519.PublicKey), nil
	}
}

// parseWhen reads a -from or -to time: RFC 3339, or a UTC day.
func parseWhen(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("-%s %q: want RFC 3339 (2026-12-01T00:00:00Z) or a day (2026-12-01)", flagName, s)
}

// connectSpans connects to the database the spans and the ledger are in.
func connectSpans(ctx context.Context, path, what string) (*pgx.Conn, error) {
	db, err := spansDatabase(path)
	if err != nil {
		return nil, err
	}
	pcfg, err := pgx.ParseConfig(db.url)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: database URL does not parse", what, db.what)
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", what, db.what, err)
	}
	return conn, nil
}
