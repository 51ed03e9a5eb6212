package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/store"
)

// Open never migrates: on a database without the schema it fails at once,
// saying what to run, and leaves the database as it was.
func TestOpen_UnmigratedDatabase_RefusedNamingLoomMigrate(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t, pgtest.Start(t))
	st, err := store.Open(t.Context(), url, nil)
	if err == nil {
		st.Close()
		t.Fatal("Open on an unmigrated database succeeded")
	}
	if !errors.Is(err, schema.ErrNotMigrated) || !strings.Contains(err.Error(), "loom migrate") {
		t.Errorf("Open on an unmigrated database = %v, want ErrNotMigrated naming loom migrate", err)
	}
	db, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var exists bool
	if err := db.QueryRow(t.Context(), "SELECT to_regnamespace('loom') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("Open created schema loom (%v, err %v): it must not migrate", exists, err)
	}
}
