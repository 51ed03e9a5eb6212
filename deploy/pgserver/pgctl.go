package pgserver

// The programs the server is made of: initdb, pg_ctl and, through pg_ctl,
// postgres, all run as the server's user.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// create makes the data directory and log file usable by the server's user
// and runs initdb if the directory holds no cluster.
func (s *Server) create(ctx context.Context, fsync bool) error {
	for _, d := range []string{filepath.Dir(s.dir), filepath.Dir(s.logFile)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	f, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create log file: %w", err)
	}
	f.Close()
	if err := chown(s.logFile, s.cred); err != nil {
		return err
	}
	if err := reachable(s.logFile, s.cred); err != nil {
		return err
	}
	if err := reachable(s.dir, s.cred); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.dir, "PG_VERSION")); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check data directory: %w", err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := chown(s.dir, s.cred); err != nil {
		return err
	}
	initdb, err := sibling(s.pgctl, "initdb")
	if err != nil {
		return err
	}
	args := []string{"-D", s.dir, "--username=postgres", "--encoding=UTF8", "--locale=C"}
	if !fsync {
		args = append(args, "--no-sync")
	}
	if s.password == "" {
		return s.run(ctx, initdb, append(args, "--auth=trust")...)
	}
	// initdb reads the password from a file the server's user can read,
	// beside the data directory, gone once the cluster exists.
	pwfile := s.dir + ".pwfile"
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("write initdb password file: %w", err)
	}
	defer os.Remove(pwfile)
	if err := chown(pwfile, s.cred); err != nil {
		return err
	}
	return s.run(ctx, initdb, append(args, "--auth-host=scram-sha-256", "--auth-local=peer", "--pwfile="+pwfile)...)
}

func (s *Server) clearLeftover(ctx context.Context) error {
	switch postmaster(s.dir) {
	case pidLive:
		return s.Stop(ctx)
	case pidStale:
		if err := os.Remove(filepath.Join(s.dir, "postmaster.pid")); err != nil {
			return fmt.Errorf("remove stale postmaster.pid: %w", err)
		}
	}
	return nil
}

func (s *Server) start(ctx context.Context) error {
	from := fileSize(s.logFile)
	opts := "-p " + strconv.Itoa(s.port)
	for _, k := range slices.Sorted(maps.Keys(s.settings)) {
		opts += " -c " + shellQuote(k+"="+s.settings[k]) // pg_ctl hands -o to /bin/sh
	}
	err := s.run(ctx, s.pgctl, "start", "-w", "-t", "60", "-s", "-D", s.dir, "-l", s.logFile, "-o", opts)
	if err != nil {
		log := logSince(s.logFile, from)
		if strings.Contains(log, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("start postgres on 127.0.0.1:%d: %w\n%s", s.port, err, log)
	}
	// Best effort: without the record the next Start picks another port.
	_ = os.WriteFile(filepath.Join(s.dir, portFile), []byte(strconv.Itoa(s.port)+"\n"), 0o644)
	return nil
}

// run runs a server program as the server's user, from / so that an
// unreadable working directory cannot trouble it (every path is absolute).
func (s *Server) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/"
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), args[0], err, bytes.TrimSpace(out))
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what the server logged after offset from, at most the
// last few kilobytes, for an error to show why the server did not start.
func logSince(path string, from int64) string {
	const limit = 4 << 10
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	cut := false
	if size := fileSize(path); size-from > limit {
		from, cut = size-limit, true
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, from, limit))
	if cut {
		_, b, _ = bytes.Cut(b, []byte("\n")) // drop the partial first line
	}
	return "log " + path + ":\n" + strings.TrimSpace(string(b))
}
