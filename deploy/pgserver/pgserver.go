// Package pgserver runs a local PostgreSQL server from a system
// installation's binaries: throwaway ones for tests (see pgtest) and the
// persistent cluster that `make run` keeps under .loom/pg. It drives initdb,
// pg_ctl and psql and links no database driver. It must never listen beyond
// 127.0.0.1, never run PostgreSQL as root (as root it runs it as the
// postgres user), and never touch a cluster other than the one in its
// data directory.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Options say where a cluster lives and how it runs.
type Options struct {
	// Dir is the data directory. It is created and initdb'd unless it
	// already holds a cluster (a PG_VERSION file).
	Dir string
	// Port is the TCP port on 127.0.0.1. Zero means the port that an earlier
	// Start recorded in Dir if it is free, else a free one.
	Port int
	// LogFile receives the server's log; the default is Dir + ".log".
	LogFile string
	// Fsync keeps PostgreSQL durable. Without it (tests), initdb skips its
	// syncs and the server runs with fsync, synchronous_commit and
	// full_page_writes off: fast, and a machine crash may lose the cluster.
	Fsync bool
	// Settings are extra server settings (-c name=value); they win over
	// the defaults.
	Settings map[string]string
	// Password, when set, is the postgres superuser's password, and the
	// cluster asks for it: initdb sets it with scram-sha-256 for TCP (peer
	// for the local socket, which is off anyway), and a cluster that an
	// earlier Start made with trust is moved over (password set, pg_hba
	// rewritten, reloaded). Empty keeps trust: any local user can then
	// connect as the superuser, which is fine for a throwaway test
	// cluster and nothing else.
	Password string
}

// Server is a cluster started by Start. Stop and Restart must not run
// concurrently with each other or with CreateDatabase.
type Server struct {
	dir, logFile string
	port         int
	pgctl        string
	settings     map[string]string
	cred         *syscall.Credential // nil unless we are root
	password     string
	// migrate is the pg_hba.conf of a trusting cluster to move over to
	// the password once it runs; "" when there is none.
	migrate string
}

// portFile, in the data directory, records the port of the last Start so
// that the next one (`make run` again) keeps it.
const portFile = "loom-port"

// errPortInUse means the server lost the race for a port picked for it.
var errPortInUse = errors.New("port in use")

// Start starts the cluster in o.Dir, creating it first (see Init), and
// returns once it accepts connections. A postmaster still running on o.Dir
// (left by a crashed run) is stopped first, so that the server runs with
// these options and the returned Server owns it; a stale postmaster.pid is
// removed.
func Start(ctx context.Context, o Options) (*Server, error) {
	s, err := newServer(o)
	if err != nil {
		return nil, err
	}
	if err := s.create(ctx, o.Fsync); err != nil {
		return nil, err
	}
	if err := s.clearLeftover(ctx); err != nil {
		return nil, err
	}
	if err := s.requirePassword(); err != nil {
		return nil, err
	}
	s.port = o.Port
	for attempt := 1; ; attempt++ {
		if o.Port == 0 {
			if s.port, err = choosePort(s.dir, attempt > 1); err != nil {
				return nil, err
			}
		}
		err = s.start(ctx)
		if err == nil || o.Port != 0 || attempt == 3 || !errors.Is(err, errPortInUse) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if s.migrate != "" {
		if err := s.setPassword(ctx); err != nil {
			return nil, errors.Join(err, s.Stop(ctx))
		}
	}
	return s, nil
}

// Init creates the cluster in o.Dir, running initdb, unless the directory
// already holds one (a PG_VERSION file); it starts nothing. A stopped
// cluster can be copied (cp -a) to make another: pgtest does, because a
// copy is faster than initdb.
func Init(ctx context.Context, o Options) error {
	s, err := newServer(o)
	if err != nil {
		return err
	}
	return s.create(ctx, o.Fsync)
}

func newServer(o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("pgserver: Options.Dir is empty")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if o.LogFile == "" {
		o.LogFile = dir + ".log"
	}
	logFile, err := filepath.Abs(o.LogFile)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	pgctl, err := FindBin("pg_ctl")
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	return &Server{dir: dir, logFile: logFile, pgctl: pgctl, settings: settings(o), cred: cred, password: o.Password}, nil
}

func settings(o Options) map[string]string {
	m := map[string]string{
		"listen_addresses": "127.0.0.1",
		// No Unix socket: every client connects over TCP, and this spares
		// a socket directory, its 107-byte path limit and its ownership.
		"unix_socket_directories": "",
		"max_connections":         "200",
	}
	if !o.Fsync {
		m["fsync"], m["synchronous_commit"], m["full_page_writes"] = "off", "off", "off"
	}
	maps.Copy(m, o.Settings)
	return m
}

// Stop shuts the server down (fast: open sessions are ended) and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop(ctx context.Context) error {
	if !s.Running() {
		return nil
	}
	return s.run(ctx, s.pgctl, "stop", "-w", "-t", "60", "-s", "-m", "fast", "-D", s.dir)
}

// Restart stops the server if it runs and starts it again on the same data
// directory and port; it fails if another program took the port meanwhile.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	return s.start(ctx)
}

// Running reports whether a postmaster runs on the server's data directory.
func (s *Server) Running() bool { return postmaster(s.dir) == pidLive }

// URL is the connection URL of the postgres database, as the postgres
// superuser, with its password if the cluster has one. Never log it.
func (s *Server) URL() string { return s.URLFor("postgres") }

// URLFor is the connection URL of database db, with the password if the
// cluster has one. Never log it.
func (s *Server) URLFor(db string) string {
	u := s.urlFor(db)
	if s.password != "" {
		u.User = url.UserPassword("postgres", s.password)
	}
	return u.String()
}

// urlFor is URLFor without the password, for programs that get it from
// PGPASSWORD instead of their command line, which ps shows to everyone.
func (s *Server) urlFor(db string) *url.URL {
	return &url.URL{Scheme: "postgres", User: url.User("postgres"), Host: fmt.Sprintf("127.0.0.1:%d", s.port),
		Path: "/" + db, RawQuery: "sslmode=disable"}
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir is the absolute data directory.
func (s *Server) Dir() string { return s.dir }

// CreateDatabase creates database name, owned by postgres.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	psql, err := sibling(s.pgctl, "psql")
	if err != nil {
		return err
	}
	q := `CREATE DATABASE "` + strings.ReplaceAll(name, `"`, `""`) + `"`
	cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", s.urlFor("postgres").String(), "-c", q)
	cmd.Env = s.psqlEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("create database %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}
