package devstack

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/loom-gateway/loom/deploy/pgserver"
)

// SpansQuery lists the latest calls with their tokens and latency: the
// CLIENT span of each call (Loom's call to the upstream) holds both. A call
// that failed over has one CLIENT span per attempt; the list shows its last
// (the one that served, or failed last), numbered, so each call is one row.
const SpansQuery = "select start_time, tenant_id, request_model, stream, input_tokens, output_tokens, " +
	"round(duration_ms::numeric, 1) as ms, round(time_to_first_chunk_ms::numeric, 1) as ttfc_ms, " +
	"http_status, error_type, coalesce(upstream_attempt, 1) as attempt from loom.spans c where kind = 'client' " +
	"and not exists (select 1 from loom.spans l where l.trace_id = c.trace_id and l.parent_span_id = c.parent_span_id " +
	"and l.kind = 'client' and coalesce(l.upstream_attempt, 1) > coalesce(c.upstream_attempt, 1)) " +
	"order by start_time desc limit 20"

// pgTimeout bounds starting (initdb included) and stopping the local cluster.
const pgTimeout = 2 * time.Minute

// StartPostgres starts the local cluster when the plan has one (Postgres is
// set) and gives its URL to the collector and Loom; without one it does nothing.
// stop shuts the cluster down; call it once the services have stopped.
//
// The cluster starts on a context that ctx's end does not cancel: pg_ctl,
// killed halfway, leaves a postmaster running that no one would stop. If
// ctx ended meanwhile, the cluster is stopped again and the error is ctx's.
func (p *Plan) StartPostgres(ctx context.Context) (stop func() error, err error) {
	if p.Postgres == nil {
		return func() error { return nil }, nil
	}
	start, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgTimeout)
	defer cancel()
	srv, err := pgserver.Start(start, *p.Postgres)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // Ctrl-C reaches pg_ctl too: its error says nothing more
		}
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			return fmt.Errorf("stop postgres: %w", err)
		}
		return nil
	}
	if ctx.Err() != nil {
		return nil, errors.Join(ctx.Err(), stop())
	}
	p.useDatabase(srv.URL())
	return stop, nil
}

// postgresHome is where the local cluster and its log live: the state
// directory, unless devstack runs as root in a checkout the postgres user
// cannot reach (a clone under /root, mode 0700). PostgreSQL refuses to run as
// root, so then the cluster lives in fallback/<id of the checkout>
// (/var/lib/loom), still one per checkout and kept across runs.
func postgresHome(stateDir, fallback string) (dir, note string, err error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return "", "", err
	}
	if os.Geteuid() != 0 {
		return stateDir, "", nil
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return "", "", err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			home := filepath.Join(fallback, clusterID(abs))
			if err := os.MkdirAll(home, 0o755); err != nil {
				return "", "", fmt.Errorf("make a home for postgres: %w", err)
			}
			return home, fmt.Sprintf("the postgres user cannot enter %s (mode %04o), so the local cluster lives in %s", d, fi.Mode().Perm(), home), nil
		}
		if d == filepath.Dir(d) {
			return stateDir, "", nil
		}
	}
}

// useDatabase points the collector (which writes spans) and Loom (whose
// console reads them) at the Postgres of url.
func (p *Plan) useDatabase(url string) {
	p.DatabaseURL = url
	for i := range p.Services {
		if n := p.Services[i].Name; n == collectorName || n == "loom" {
			p.Services[i].Env = append(p.Services[i].Env, EnvDatabaseURL+"="+url)
		}
	}
}

// psqlURL is the URL the banner's psql line uses: for the local cluster,
// its URL without the password and with ?passfile= naming the file that
// holds it, so the line works pasted and shows no secret.
func (p *Plan) psqlURL() string {
	if p.passfile == "" {
		return p.DatabaseURL
	}
	u, err := url.Parse(p.DatabaseURL)
	if err != nil {
		return p.DatabaseURL
	}
	u.User = url.User(u.User.Username())
	q := u.Query()
	q.Set("passfile", p.passfile)
	u.RawQuery = q.Encode()
	return u.String()
}

// psqlLine is a shell line that runs SpansQuery. A URL with a password is
// not printed: the line reads it from $LOOM_DATABASE_URL instead.
func psqlLine(psql, dbURL string) string {
	if psql == "" {
		psql = "psql"
	}
	target := shellQuote(dbURL)
	if u, err := url.Parse(dbURL); err != nil || hasPassword(u) {
		target = `"$` + EnvDatabaseURL + `"`
	}
	return shellQuote(psql) + " " + target + ` -c "` + SpansQuery + `"`
}

// auditLine is a shell line that runs `loom audit completeness` against
// dbURL, which it hands over in $LOOM_DATABASE_URL: the local cluster's URL
// names its passfile (URL-encoded, which nobody should have to type), an
// external one with a password is read from the variable already set.
func auditLine(loom, dbURL string) string {
	if u, err := url.Parse(dbURL); err != nil || hasPassword(u) {
		return shellQuote(loom) + " audit completeness"
	}
	return EnvDatabaseURL + "=" + shellQuote(dbURL) + " " + shellQuote(loom) + " audit completeness"
}

// verifyLine is the shell line that runs `loom audit verify` against
// dbURL (handed over as auditLine does) with the ledger's public key.
func verifyLine(loom, dbURL, pub string) string {
	cmd := shellQuote(loom) + " audit verify -pubkey " + shellQuote(pub)
	if u, err := url.Parse(dbURL); err != nil || hasPassword(u) {
		return cmd
	}
	return EnvDatabaseURL + "=" + shellQuote(dbURL) + " " + cmd
}

func hasPassword(u *url.URL) bool {
	_, ok := u.User.Password()
	return ok || u.Query().Has("password")
}

// describeDatabase names the Postgres for people, without its password.
func describeDatabase(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "the Postgres of " + EnvDatabaseURL
	}
	return u.Host + u.Path
}

// findPsql returns "psql" when it is on PATH (the line stays short), else
// the path of the server installation's psql, else "psql" anyway.
func findPsql() string {
	if _, err := exec.LookPath("psql"); err == nil {
		return "psql"
	}
	if p, err := pgserver.FindBin("psql"); err == nil {
		return p
	}
	return "psql"
}

// shellQuote leaves words of safe characters bare and single-quotes the rest.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
