package pgserver

// Moving a cluster made with trust (by an earlier run, before clusters had
// passwords) over to a password.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// requirePassword notes, before the server starts, whether its pg_hba.conf
// still trusts anyone: Start then sets the password over that trust and
// rewrites the file.
func (s *Server) requirePassword() error {
	if s.password == "" {
		return nil
	}
	hba := filepath.Join(s.dir, "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	if _, trusts := withoutTrust(b); trusts {
		s.migrate = hba
	}
	return nil
}

// withoutTrust returns pg_hba.conf with every trust line asking for a
// password instead (scram-sha-256; peer for the local socket), and
// whether any line trusted.
func withoutTrust(hba []byte) ([]byte, bool) {
	lines := strings.SplitAfter(string(hba), "\n")
	trusts := false
	for i, line := range lines {
		body, nl := strings.CutSuffix(line, "\n")
		fields := strings.Fields(body)
		if len(fields) < 4 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		// The method is the first field after the address (host lines) or
		// after the user (local lines); options may follow it.
		at := 3
		if fields[0] != "local" {
			at = 4
			if len(fields) > 5 && net.ParseIP(fields[4]) != nil {
				at = 5 // "address mask" rather than CIDR
			}
		}
		if at >= len(fields) || fields[at] != "trust" {
			continue
		}
		trusts = true
		fields[at] = "scram-sha-256"
		if fields[0] == "local" {
			fields[at] = "peer"
		}
		lines[i] = strings.Join(fields, "\t")
		if nl {
			lines[i] += "\n"
		}
	}
	return []byte(strings.Join(lines, "")), trusts
}

// setPassword runs on a started server whose pg_hba.conf trusts: it sets
// the superuser's password (still over trust), then rewrites pg_hba.conf
// and reloads, so from then on every connection needs the password.
func (s *Server) setPassword(ctx context.Context) error {
	psql, err := sibling(s.pgctl, "psql")
	if err != nil {
		return err
	}
	// On standard input, not the command line: ps shows that to everyone.
	q := "SET password_encryption = 'scram-sha-256';\nALTER ROLE postgres PASSWORD '" + strings.ReplaceAll(s.password, "'", "''") + "';\n"
	cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", s.urlFor("postgres").String())
	cmd.Stdin = strings.NewReader(q)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("set the postgres password: %w: %s", err, bytes.TrimSpace(out))
	}
	b, err := os.ReadFile(s.migrate)
	if err != nil {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	b, _ = withoutTrust(b)
	// Written in place: the file keeps its owner (the server's user).
	if err := os.WriteFile(s.migrate, b, 0o600); err != nil {
		return fmt.Errorf("rewrite pg_hba.conf: %w", err)
	}
	if err := s.run(ctx, s.pgctl, "reload", "-s", "-D", s.dir); err != nil {
		return err
	}
	s.migrate = ""
	// A reload is a signal: wait until the server has read the new file,
	// so that Start returns only once trust is gone.
	for deadline := time.Now().Add(10 * time.Second); ; {
		probe := exec.CommandContext(ctx, psql, "-X", "-q", "-w", "-d", s.urlFor("postgres").String(), "-c", "SELECT 1")
		probe.Env = append(os.Environ(), "PGPASSWORD=")
		if probe.Run() != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres still lets a connection in without the password after rewriting %s", s.migrate)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// psqlEnv is the environment of a psql this package runs: the password in
// PGPASSWORD, where only this user can read it.
func (s *Server) psqlEnv() []string {
	env := os.Environ()
	if s.password != "" {
		env = append(env, "PGPASSWORD="+s.password)
	}
	return env
}
