// Package cli is the loom command: serving the gateway and the small
// administrative subcommands. Main returns errors; only cmd/loom exits.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// Version is service.version on Loom's spans; release builds set it with
// -ldflags "-X github.com/loom-gateway/loom/proxy/cli.Version=...".
var Version = "dev"

// ErrUsage marks a command line that could not be understood; the usage was
// already printed.
var ErrUsage = errors.New("usage")

const usage = `loom: an OpenAI-compatible AI gateway.

Usage:
  loom serve -config FILE [-listen ADDR] [-log-calls] [-migrate]
                                                        run the gateway (-migrate: loom migrate first)
  loom migrate [-config FILE]                           apply the schema's migrations to the store's and
                                                        the console's database ($LOOM_DATABASE_URL without -config)
  loom config check -config FILE                        validate a configuration
  loom audit completeness [-config FILE] [-since 168h] [-json]
                                                        per instance and run: calls numbered, stored, gaps,
                                                        and whether the run stopped cleanly (exit 1 on a gap)
  loom audit verify [-config FILE] [-tenant T] [-from TIME] [-to TIME] [-pubkey B64 | -key-file F] [-json]
                                                        recompute the audit ledger's chains, check each call
                                                        entry against its span row and the signed checkpoints;
                                                        names the first bad entry (exit 1)
  loom audit verify -bundle FILE [-pubkey B64 | -key-file F]
                                                        check an exported bundle offline
  loom audit export -tenant T [-from TIME] [-to TIME] [-o FILE] [-config FILE]
                                                        one chain's entries, checkpoints and public key as a bundle
  loom audit pubkey [-key-file F]                       print the ledger signing key's public key ($LOOM_LEDGER_KEY)
  loom audit keygen -out FILE                           make a ledger signing key file (0600)
  loom audit log [-config FILE] [-tenant T] [-from TIME] [-to TIME] [-limit N] [-json]
                                                        the admin audit log: who changed what in the tenant
                                                        store, before and after (secrets redacted), newest first
  loom keys new                                         print a new API key and its SHA-256
  loom keys hash KEY                                    print the SHA-256 of an existing key

The tenant store (Postgres at $LOOM_DATABASE_URL, or the store section of
-config FILE; provider credentials are sealed with the 32-byte key, hex or
base64, in $LOOM_SECRET_KEY or the one the config names):
  loom tenants create ID [-rpm N] [-tpm N] [-streams N] [-capture] [-max-bytes N]
  loom tenants update ID [the same flags: only those given change]
  loom tenants list
  loom tenants delete ID
  loom tenants models ID NAME=DEPLOYMENT[:UPSTREAM_MODEL]...   replace the tenant's models
  loom tenants models ID -file MODELS.yaml   the same, from a YAML list in the config file's form
                                                        (deployments with weight/priority, fallbacks, routing)
  loom tenants credential ID DEPLOYMENT [-delete]   set the tenant's own credential, read from stdin
  loom tenants budgets ID [-key KEY_ID] PERIOD=LIMIT[@ALERT_AT]... | -none
                                                        replace the tenant's (or its key's) spend caps:
                                                        day=25.00 month=500@0.9 (UTC; alert_at default 0.8)
  loom keys create -tenant ID [-id NAME] [-models a,b] [-expires 720h] [-rpm N] [-tpm N] [-streams N]
                                                        make a key and print it, once
  loom keys list -tenant ID
  loom keys revoke ID
  loom prices list                                      the store's price entries (per million tokens)
  loom prices add MODEL -from DATE -input P -output P [-cached-input P] [-cache-write P] [-reasoning P]
                  [-deployment D] [-currency USD] [-id ID]
                                                        add an entry; a new price is a new entry with a later -from
  loom prices delete ID                                 withdraw an entry that is not in force yet

Every change a store command makes is recorded in the admin audit log as
the operator's: -actor NAME, else $LOOM_ACTOR, else the OS user name.
`

// Stdio is where a command reads and writes.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Main runs the command in args, with the process's standard input.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return Run(ctx, args, Stdio{In: os.Stdin, Out: stdout, Err: stderr})
}

// Run runs the command in args. Tests give it their own standard input.
func Run(ctx context.Context, args []string, std Stdio) error {
	stdout, stderr := std.Out, std.Err
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "migrate":
		return migrateCmd(ctx, args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return ErrUsage
		}
		return checkConfig(args[2:], stdout, stderr)
	case "keys":
		return keys(ctx, args[1:], std)
	case "audit":
		return audit(ctx, args[1:], std)
	case "tenants":
		return tenants(ctx, args[1:], std)
	case "prices":
		return prices(ctx, args[1:], std)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "loom: unknown command %q\n\n%s", args[0], usage)
	return ErrUsage
}

// ExitCode maps Main's error to a process exit code, printing it.
func ExitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	}
	fmt.Fprintf(stderr, "loom: %v\n", err)
	return 1
}

func keys(ctx context.Context, args []string, std Stdio) error {
	stdout, stderr := std.Out, std.Err
	switch {
	case len(args) == 1 && args[0] == "new":
		key, hash, err := tenant.NewKey()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key:    %s\nsha256: %s\n\nThe key is shown once. Put the sha256 line in the config:\n  keys:\n    - id: <a name for this key>\n      sha256: %s\n", key, hash, hash)
		return nil
	case len(args) == 2 && args[0] == "hash":
		fmt.Fprintln(stdout, tenant.Hash(args[1]))
		return nil
	case len(args) > 0 && (args[0] == "create" || args[0] == "list" || args[0] == "revoke"):
		return storedKeys(ctx, args, std)
	}
	fmt.Fprint(stderr, usage)
	return ErrUsage
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loom config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "loom.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d deployments, %d tenants)\n", *path, len(cfg.Deployments), len(cfg.Tenants))
	return nil
}

func logRecord(log *slog.Logger, r *call.Record) {
	log.Info("call",
		"op", string(r.Operation), "tenant", r.TenantID, "key_id", r.KeyID, "model", r.Model,
		"deployment", r.Deployment, "stream", r.Stream, "status", r.Status, "outcome", string(r.Outcome),
		"error_type", r.ErrorType, "response_id", string(r.ResponseID), "response_model", string(r.ResponseModel),
		"finish_reasons", r.FinishReasons, "input_tokens", r.Usage.InputTokens, "output_tokens", r.Usage.OutputTokens,
		"chunks", r.Chunks, "ttfc", r.TimeToFirstChunk().Round(time.Microsecond),
		"duration", r.Duration().Round(time.Microsecond), "overhead", r.Overhead.Round(time.Microsecond),
		"client_disconnected", r.ClientDisconnected)
}
