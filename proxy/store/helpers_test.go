package store_test

import (
	"crypto/rand"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
)

// env is a store on a fresh database of a server of the test's own, and an
// owner's pool on the same database for what the store does not offer.
type env struct {
	st  *store.Store
	srv *pgserver.Server
	url string
	box *secret.Box
	db  *pgxpool.Pool
}

func newEnv(t *testing.T) env {
	t.Helper()
	srv := pgtest.Start(t)
	url := pgtest.Database(t, srv)
	box := newBox(t)
	db, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	// The store never migrates: whoever deploys it runs `loom migrate`.
	if err := schema.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	st := open(t, url, box)
	return env{st: st, srv: srv, url: url, box: box, db: db}
}

func open(t *testing.T, url string, box *secret.Box, opts ...store.Option) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), url, box, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	b, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
