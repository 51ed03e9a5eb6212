package pgserver_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/deploy/prereq"
)

// withoutPassword is url with its password taken out.
func withoutPassword(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

func startWithPassword(t *testing.T, dir, password string) *pgserver.Server {
	t.Helper()
	srv, err := pgserver.Start(t.Context(), pgserver.Options{Dir: dir, Password: password})
	prereq.Check(t, err, pgserver.ErrNotInstalled)
	stopLater(t, srv)
	return srv
}

// refused checks that a connection without the password, or with a wrong
// one, is refused, and that the server's own URL gets in.
func refused(t *testing.T, srv *pgserver.Server) {
	t.Helper()
	bare := withoutPassword(t, srv.URL())
	if out, err := psql(t, bare, "SELECT 1"); err == nil || !strings.Contains(out, "password") {
		t.Errorf("a connection without the password: %v %s; want refused for want of a password", err, out)
	}
	wrong := strings.Replace(bare, "postgres@", "postgres:wrong@", 1)
	if out, err := psql(t, wrong, "SELECT 1"); err == nil {
		t.Errorf("a connection with a wrong password got in: %s", out)
	}
	if got := mustPsql(t, srv.URL(), "SELECT 1"); got != "1" {
		t.Errorf("the server's URL: %q", got)
	}
}

func TestStart_WithPassword_RefusesConnectionsWithoutIt(t *testing.T) {
	t.Parallel()
	srv := startWithPassword(t, filepath.Join(pgtest.TempDir(t), "pg"), "s3cret-'quoted")
	refused(t, srv)
	hba, err := os.ReadFile(filepath.Join(srv.Dir(), "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stripComments(string(hba)), "trust") {
		t.Errorf("pg_hba.conf still trusts:\n%s", hba)
	}
	if _, err := os.Stat(srv.Dir() + ".pwfile"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("initdb's password file was left behind: %v", err)
	}
	if err := srv.CreateDatabase(t.Context(), "other"); err != nil {
		t.Errorf("CreateDatabase on a cluster with a password: %v", err)
	}
}

// A cluster that an earlier run made with trust is moved over to the
// password on the next Start, its data kept.
func TestStart_TrustClusterFromAnEarlierRun_MovedToThePassword(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(pgtest.TempDir(t), "pg")
	old, err := pgserver.Start(t.Context(), pgserver.Options{Dir: dir})
	prereq.Check(t, err, pgserver.ErrNotInstalled)
	mustPsql(t, old.URL(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	if err := old.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := startWithPassword(t, dir, "now-with-a-password")
	refused(t, srv)
	if got := mustPsql(t, srv.URL(), "SELECT v FROM kept"); got != "42" {
		t.Errorf("data after the move: %q", got)
	}
	// And the next Start of the moved cluster needs no move.
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	refused(t, srv)
}

func stripComments(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}
