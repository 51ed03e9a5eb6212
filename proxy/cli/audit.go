package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/store"
)

// ErrIncomplete is what `loom audit completeness` returns when a run lost
// calls: scripts get a non-zero exit without parsing the table.
var ErrIncomplete = errors.New("calls are missing")

// audit is `loom audit ...`: questions about the record itself.
func audit(ctx context.Context, args []string, std Stdio) error {
	if len(args) > 0 {
		switch args[0] {
		case "completeness":
			return completeness(ctx, args[1:], std.Out, std.Err)
		case "verify":
			return auditVerify(ctx, args[1:], std)
		case "export":
			return auditExport(ctx, args[1:], std)
		case "pubkey":
			return auditPubkey(args[1:], std)
		case "keygen":
			return auditKeygen(args[1:], std)
		case "log":
			return auditLog(ctx, args[1:], std)
		}
	}
	fmt.Fprint(std.Err, usage)
	return ErrUsage
}

// completeness reports, per instance and run, the calls numbered against
// the calls stored: the proof that the record is whole, or where it is not.
func completeness(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loom audit completeness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file whose console (or store) section names the spans' database (default: $"+EnvDatabaseURL+")")
	since := fs.Duration("since", 7*24*time.Hour, "report the runs with a row in this window")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "loom audit completeness: unexpected argument %q\n\n%s", fs.Arg(0), usage)
		return ErrUsage
	}
	db, err := spansDatabase(*path)
	if err != nil {
		return err
	}
	pcfg, err := pgx.ParseConfig(db.url)
	if err != nil {
		return fmt.Errorf("audit completeness: %s: database URL does not parse", db.what)
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("audit completeness: %s: %w", db.what, err)
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	runs, err := schema.Completeness(ctx, conn, time.Now().Add(-*since), time.Minute)
	if err != nil {
		return err
	}
	if *asJSON {
		if runs == nil {
			runs = []schema.Run{}
		}
		b, err := json.Marshal(struct {
			Runs []schema.Run `json:"runs"`
		}{runs})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printRuns(stdout, runs)
	}
	for _, r := range runs {
		if r.Gaps > 0 {
			return ErrIncomplete
		}
	}
	return nil
}

// printRuns writes the runs as a table a person reads at a glance.
func printRuns(w io.Writer, runs []schema.Run) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tRUN\tSTARTED\tNUMBERED\tSTORED\tGAPS\tSTOPPED\tMISSING")
	for _, r := range runs {
		stop := "cleanly"
		if !r.Closed {
			stop = fmt.Sprintf("no: crashed or running (may have lost up to %d more calls: those finished in its last %s commit window and while that commit was being written)",
				r.LossBound, time.Duration(r.CommitIntervalSeconds*float64(time.Second)))
		}
		var missing []string
		for _, m := range r.Missing {
			if m[0] == m[1] {
				missing = append(missing, fmt.Sprint(m[0]))
			} else {
				missing = append(missing, fmt.Sprintf("%d-%d", m[0], m[1]))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", r.InstanceID, r.RunID, r.StartedAt.UTC().Format(time.RFC3339),
			r.Numbered, r.Stored, r.Gaps, stop, strings.Join(missing, ","))
	}
	tw.Flush() //nolint:errcheck // the writer's own errors surface nowhere useful
	if len(runs) == 0 {
		fmt.Fprintln(w, "no calls recorded in the window")
	}
}

// spansDatabase is where the spans are: $LOOM_DATABASE_URL without a
// config file, else the console's database, else the store's.
func spansDatabase(path string) (database, error) {
	if path == "" {
		url := os.Getenv(EnvDatabaseURL)
		if url == "" {
			return database{}, fmt.Errorf("no database: set %s or give -config FILE with console.database_url_env or store.database_url_env", EnvDatabaseURL)
		}
		return database{what: "$" + EnvDatabaseURL, url: url}, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return database{}, err
	}
	dbs, err := databases(cfg)
	if err != nil {
		return database{}, fmt.Errorf("%s: %w", path, err)
	}
	// databases lists the store first; the spans live in the console's.
	return dbs[len(dbs)-1], nil
}

// auditLog is `loom audit log`: the admin audit log's entries, newest
// first, from the tenant store's database (where the changes are made).
func auditLog(ctx context.Context, args []string, std Stdio) error {
	c := newCommand("audit log", std)
	tenantID := c.fs.String("tenant", "", "only the entries whose target is this tenant's")
	from := c.fs.String("from", "", "only entries at or after this RFC 3339 time")
	to := c.fs.String("to", "", "only entries before this RFC 3339 time")
	limit := c.fs.Int("limit", store.DefaultAuditLimit, fmt.Sprintf("at most this many entries, the newest (at most %d)", store.MaxAuditLimit))
	asJSON := c.fs.Bool("json", false, "print JSON lines instead of text")
	if _, err := c.parse(args, 0); err != nil {
		return err
	}
	q := store.AuditQuery{Tenant: *tenantID, Limit: *limit}
	for _, p := range []struct {
		flag, v string
		t       *time.Time
	}{{"-from", *from, &q.From}, {"-to", *to, &q.To}} {
		if p.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, p.v)
		if err != nil {
			fmt.Fprintf(std.Err, "loom audit log: %s %q is not an RFC 3339 time (like 2026-12-05T21:00:00Z)\n", p.flag, p.v)
			return ErrUsage
		}
		*p.t = t
	}
	if *limit < 1 || *limit > store.MaxAuditLimit {
		fmt.Fprintf(std.Err, "loom audit log: -limit must be 1 to %d\n", store.MaxAuditLimit)
		return ErrUsage
	}
	return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
		entries, err := st.Audit(ctx, q)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAuditJSON(std.Out, entries)
		}
		for _, e := range entries {
			fmt.Fprintf(std.Out, "%s  %s:%s  request %s  %s  %s\n  before: %s\n  after:  %s\n",
				e.Time.UTC().Format(time.RFC3339Nano), e.Actor.Kind, e.Actor.ID, orDash(e.Actor.RequestID), e.Action, e.Target,
				e.Before, e.After)
		}
		if len(entries) == 0 {
			fmt.Fprintln(std.Out, "no changes recorded")
		}
		return nil
	})
}

// auditLine is one entry as `audit log -json` prints it: the admin API's
// fields.
type auditLine struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	ActorKind string    `json:"actor_kind"`
	ActorID   string    `json:"actor_id"`
	RequestID string    `json:"request_id"`
	Action    string    `json:"action"`
	Tenant    string    `json:"tenant"`
	Target    string    `json:"target"`
	Before    rawJSON   `json:"before"`
	After     rawJSON   `json:"after"`
}

// rawJSON is JSON already encoded, written as it is.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

func printAuditJSON(w io.Writer, entries []store.AuditEntry) error {
	for _, e := range entries {
		b, err := json.Marshal(auditLine{Seq: e.Seq, Time: e.Time.UTC(), ActorKind: e.Actor.Kind, ActorID: e.Actor.ID,
			RequestID: e.Actor.RequestID, Action: e.Action, Tenant: store.TargetTenant(e.Target), Target: e.Target,
			Before: rawJSON(e.Before), After: rawJSON(e.After)})
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
			return err
		}
	}
	return nil
}
