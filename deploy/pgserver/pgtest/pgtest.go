// Package pgtest gives tests a real PostgreSQL: a throwaway server per
// call to Start, and a fresh database per call to Database, so that tests
// can share a server without sharing tables. Where the server binaries are
// missing it skips the test, except in CI (CI=true), where it fails it.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/loom-gateway/loom/deploy/prereq"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/pgserver"
)

// Start returns a new server for this test alone (fsync off, a free port,
// a temporary data directory), stopped and removed when the test ends.
func Start(t testing.TB) *pgserver.Server {
	t.Helper()
	dir := filepath.Join(TempDir(t), "data")
	check(t, copyTemplate(dir))
	return StartWith(t, pgserver.Options{Dir: dir})
}

// StartWith is Start with options: a chosen data directory (make it with
// TempDir; a new one costs an initdb), settings, fsync. The server is
// stopped when the test ends; its directory is left to whoever made it.
func StartWith(t testing.TB, o pgserver.Options) *pgserver.Server {
	t.Helper()
	srv, err := pgserver.Start(t.Context(), o)
	check(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	return srv
}

// Database creates a database with a unique name, derived from the test's,
// on srv and returns its URL. It is not dropped: it goes when a server from
// Start goes.
func Database(t testing.TB, srv *pgserver.Server) string {
	t.Helper()
	name := dbName(t.Name())
	if err := srv.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return srv.URLFor(name)
}

// TempDir returns a new directory for a data directory, removed when the
// test ends. Unlike t.TempDir's, it can be entered by the postgres user,
// which the server runs as when the tests run as root (CI does).
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := mkdirTemp("loom-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove postgres directory: %v", err)
		}
	})
	return dir
}

// mkdirTemp makes a directory in os.TempDir, which is world-searchable,
// and opens it to the postgres user when we are root.
func mkdirTemp(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err == nil && os.Geteuid() == 0 {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		return "", fmt.Errorf("postgres directory: %w", err)
	}
	return dir, nil
}

// check ends the test if err is not nil; see prereq.
func check(t testing.TB, err error) {
	t.Helper()
	prereq.Check(t, err, pgserver.ErrNotInstalled)
}

// dbName is a valid, unquoted PostgreSQL identifier (under 63 bytes) that
// names the test, for whoever reads the server's log.
func dbName(test string) string {
	b := []byte(strings.ToLower(test))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return "t_" + string(b) + "_" + strings.ToLower(rand.Text()[:8])
}
