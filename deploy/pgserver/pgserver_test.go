package pgserver_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
)

// psql runs sql against url and returns the unaligned, tuples-only output.
func psql(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	bin, err := pgserver.FindBin("psql")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustPsql(t *testing.T, url, sql string) string {
	t.Helper()
	out, err := psql(t, url, sql)
	if err != nil {
		t.Fatalf("psql %q: %v: %s", sql, err, out)
	}
	return out
}

// stopLater stops a server that a test started with pgserver.Start itself.
func stopLater(t *testing.T, s *pgserver.Server) {
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

func TestServer_StopThenRestart_KeepsDataAndPort(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx := t.Context()
	mustPsql(t, srv.URL(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')")
	if got := mustPsql(t, srv.URL(), "SHOW fsync"); got != "off" {
		t.Errorf("fsync = %s for a test server, want off", got)
	}
	port := srv.Port()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.Running() {
		t.Fatal("Running() after Stop")
	}
	if out, err := psql(t, srv.URL(), "SELECT 1"); err == nil {
		t.Fatalf("psql reached a stopped server: %s", out)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if !srv.Running() || srv.Port() != port {
		t.Fatalf("after Restart: running %v, port %d; want true, %d", srv.Running(), srv.Port(), port)
	}
	if got := mustPsql(t, srv.URL(), "SELECT v FROM kept"); got != "hello" {
		t.Errorf("after Restart the table holds %q, want hello", got)
	}
}

func TestStart_ExistingCluster_ReusesRecordedPortIfFree(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(pgtest.TempDir(t), "pg")
	first := pgtest.StartWith(t, pgserver.Options{Dir: dir, Fsync: true})
	if got := mustPsql(t, first.URL(), "SHOW fsync"); got != "on" {
		t.Errorf("fsync = %s with Options.Fsync, want on", got)
	}
	mustPsql(t, first.URL(), "CREATE TABLE kept (v int)")
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	again, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	stopLater(t, again)
	if again.Port() != first.Port() {
		t.Errorf("second Start took port %d, want the recorded %d", again.Port(), first.Port())
	}
	mustPsql(t, again.URL(), "SELECT * FROM kept")
	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(first.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	moved, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	stopLater(t, moved)
	if moved.Port() == first.Port() {
		t.Errorf("Start took the recorded port %d although something listens there", moved.Port())
	}
	mustPsql(t, moved.URL(), "SELECT * FROM kept")
}

func TestStart_PostmasterLeftRunning_StopsItAndKeepsPort(t *testing.T) {
	t.Parallel()
	left := pgtest.Start(t)
	srv, err := pgserver.Start(t.Context(), pgserver.Options{Dir: left.Dir()})
	if err != nil {
		t.Fatal(err)
	}
	stopLater(t, srv)
	if srv.Port() != left.Port() {
		t.Errorf("port %d, want %d, the leftover's", srv.Port(), left.Port())
	}
	mustPsql(t, srv.URL(), "SELECT 1")
}

func TestStart_StalePIDFile_IsRemoved(t *testing.T) {
	t.Parallel()
	old := pgtest.Start(t)
	if err := old.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	dir := old.Dir()
	// Our own pid: alive, but not a postmaster (as after a reboot).
	pid := strconv.Itoa(os.Getpid()) + "\n" + dir + "\n"
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := pgserver.Start(t.Context(), pgserver.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stopLater(t, srv)
	mustPsql(t, srv.URL(), "SELECT 1")
}

func TestStart_BadSetting_ErrorShowsLog(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	if err := srv.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := pgserver.Start(t.Context(), pgserver.Options{Dir: srv.Dir(), Settings: map[string]string{"shared_buffers": "lots"}})
	if err == nil || !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Fatalf("Start with a bad setting: %v; want the log line that says why", err)
	}
}

func TestStart_Settings_ReachServerVerbatim(t *testing.T) {
	t.Parallel()
	note := `it's "quoted" $HOME; -c fsync=on`
	srv := pgtest.StartWith(t, pgserver.Options{
		Dir:      filepath.Join(pgtest.TempDir(t), "pg"),
		Settings: map[string]string{"loom.note": note},
	})
	if got := mustPsql(t, srv.URL(), "SELECT current_setting('loom.note')"); got != note {
		t.Errorf("loom.note = %q, want %q", got, note)
	}
	if got := mustPsql(t, srv.URL(), "SHOW fsync"); got != "off" {
		t.Errorf("fsync = %s: a setting's value leaked into the command line", got)
	}
}

func TestServer_CreateDatabase_OddName(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	name := `we"ird db/é`
	if err := srv.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	if got := mustPsql(t, srv.URLFor(name), "SELECT current_database()"); got != name {
		t.Errorf("connected to %q, want %q", got, name)
	}
	if err := srv.CreateDatabase(t.Context(), name); err == nil {
		t.Error("creating it twice succeeded")
	}
}
