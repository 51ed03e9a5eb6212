package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the NOTIFY channel that migration 0002's triggers signal on
// every change to a tenant, model, key or credential.
const Channel = "loom_tenants"

// DefaultPoll is Watch's poll interval when it is given none.
const DefaultPoll = 10 * time.Second

// Watch's timings: a change is reported within coalesce of its NOTIFY; a
// lost connection is retried after minBackoff, doubling to maxBackoff, so
// that once Postgres is back a change applies within about a second.
const (
	coalesce       = 50 * time.Millisecond
	minBackoff     = 50 * time.Millisecond
	maxBackoff     = time.Second
	connectTimeout = 5 * time.Second
	pingTimeout    = 5 * time.Second
)

// Watch calls changed whenever the tenants may have changed, until ctx
// ends: on each NOTIFY loom_tenants (a burst within 50 ms is one call), at
// least every poll (DefaultPoll if poll <= 0) as a safety net, and each
// time its LISTEN connection is (re)established, since notifications sent
// while it was away are lost — the first of those calls also covers
// changes made between the caller's first Load and the LISTEN.
//
// It holds one connection of its own, outside the pool. When Postgres goes
// away it reconnects with backoff up to a second; polls continue meanwhile
// (changed's Load will fail, and the caller keeps its snapshot). changed
// runs on Watch's goroutine, one call at a time; a slow changed delays
// nothing but the next call.
func (s *Store) Watch(ctx context.Context, poll time.Duration, changed func()) {
	if poll <= 0 {
		poll = DefaultPoll
	}
	w := &watcher{s: s, poll: poll, changed: changed, next: time.Now().Add(poll)}
	backoff := minBackoff
	for ctx.Err() == nil {
		err := w.listen(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case w.up:
			// It was listening: try again at once.
			w.up, w.lost, backoff = false, true, minBackoff
			s.log.Warn("tenant store: change feed lost, reconnecting", "err", err)
			continue
		case !w.lost:
			w.lost = true
			s.log.Warn("tenant store: cannot listen for changes, retrying", "err", err)
		}
		w.sleep(ctx, backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

type watcher struct {
	s       *Store
	poll    time.Duration
	changed func()
	next    time.Time // when the next poll is due
	up      bool      // the current connection got as far as LISTEN
	lost    bool      // a connection failed and none has listened since
}

func (w *watcher) fire() {
	w.changed()
	w.next = time.Now().Add(w.poll)
}

// sleep waits d, still polling on time.
func (w *watcher) sleep(ctx context.Context, d time.Duration) {
	wake := time.Now().Add(d)
	for {
		until := min(time.Until(wake), time.Until(w.next))
		t := time.NewTimer(max(until, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(w.next) {
			w.fire()
		}
		if !time.Now().Before(wake) {
			return
		}
	}
}

// listen connects, listens and reports changes until the connection fails.
func (w *watcher) listen(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, w.s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() {
		// Bounded: saying goodbye to a server that vanished must not hang.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx) //nolint:errcheck // the connection is done with either way
	}()
	if _, err := conn.Exec(cctx, "LISTEN "+Channel); err != nil {
		return err
	}
	if w.lost {
		w.s.log.Info("tenant store: change feed back")
	}
	w.up, w.lost = true, false
	w.fire()
	for {
		wctx, cancel := context.WithDeadline(ctx, w.next)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			if err := drain(ctx, conn); err != nil || ctx.Err() != nil {
				return errors.Join(err, ctx.Err())
			}
			w.fire()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// A poll is due. Ping too: a peer that vanished without
			// closing the connection would otherwise never be noticed.
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := conn.Ping(pctx)
			cancel()
			w.fire()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// drain swallows the notifications that arrive within coalesce, so that a
// burst of changes (a CLI script, a tenant's models then its keys) reloads
// once.
func drain(ctx context.Context, conn *pgx.Conn) error {
	dctx, cancel := context.WithTimeout(ctx, coalesce)
	defer cancel()
	for {
		_, err := conn.WaitForNotification(dctx)
		switch {
		case err == nil:
		case dctx.Err() != nil && !conn.IsClosed():
			return nil
		default:
			return err
		}
	}
}
