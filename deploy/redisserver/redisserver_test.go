package redisserver

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/prereq"
)

func TestFindBin(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "redis-server")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	onPath := func(string) (string, error) { return "/opt/redis/bin/redis-server", nil }
	notOnPath := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name     string
		lookPath func(string) (string, error)
		fallback string
		want     string
		wantErr  error
	}{
		{"PATH wins", onPath, exe, "/opt/redis/bin/redis-server", nil},
		{"not on PATH: Debian's path", notOnPath, exe, exe, nil},
		{"fallback not executable", notOnPath, plain, "", ErrNotInstalled},
		{"nowhere", notOnPath, filepath.Join(dir, "missing"), "", ErrNotInstalled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findBin(tt.lookPath, tt.fallback)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("findBin() = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "apt-get install redis-server") {
				t.Errorf("error %q does not say what to install", err)
			}
		})
	}
}

// startOrSkip starts a server, skipping when redis-server is missing (a
// failure under CI=true, as prereq decides).
func startOrSkip(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := Start(t.Context(), o)
	prereq.Check(t, err, ErrNotInstalled)
	t.Cleanup(func() { s.Stop() })
	return s
}

// command runs one inline command and returns the reply's first line.
func command(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	var lines []string
	// CONFIG GET answers an array of two bulk strings: five lines.
	n := 1
	for i := 0; i < n; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if i == 0 && strings.HasPrefix(line, "*2") {
			n = 5
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, " ")
}

func TestStart_AnswersOnLoopback_WithoutPersistence(t *testing.T) {
	s := startOrSkip(t, Options{})
	if got := command(t, s.Addr(), "PING"); got != "+PONG" {
		t.Errorf("PING = %q", got)
	}
	for cmd, want := range map[string]string{
		"CONFIG GET save":       "*2 $4 save $0 ",
		"CONFIG GET appendonly": "*2 $10 appendonly $2 no",
		"CONFIG GET bind":       "*2 $4 bind $9 127.0.0.1",
	} {
		if got := command(t, s.Addr(), cmd); got != want {
			t.Errorf("%s = %q, want %q", cmd, got, want)
		}
	}
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Errorf("URL() = %q", s.URL())
	}
}

func TestStop_EndsTheServer_AndIsIdempotent(t *testing.T) {
	s := startOrSkip(t, Options{})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Error("Running() after Stop")
	}
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		c.Close()
		t.Error("port still answers after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStart_PortTaken_FailsWithTheLog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = FindBin()
	prereq.Check(t, err, ErrNotInstalled)
	s, err := Start(t.Context(), Options{Dir: t.TempDir(), Port: port})
	if err == nil {
		s.Stop()
		t.Fatalf("Start on a taken port %d succeeded", port)
	}
	if !errors.Is(err, errPortInUse) || !strings.Contains(err.Error(), "redis.log") {
		t.Errorf("error = %v; want errPortInUse with the log", err)
	}
}

func TestStart_NoDir_Fails(t *testing.T) {
	if _, err := Start(t.Context(), Options{}); err == nil {
		t.Fatal("Start without a Dir succeeded")
	}
}

func TestStart_PortHeldByAnotherRedis_NotMistakenForOurs(t *testing.T) {
	other := startOrSkip(t, Options{})
	s, err := Start(t.Context(), Options{Dir: t.TempDir(), Port: other.Port()})
	if err == nil {
		s.Stop()
		t.Fatalf("Start on port %d, held by another redis-server, succeeded", other.Port())
	}
	if !errors.Is(err, errPortInUse) {
		t.Errorf("error = %v; want errPortInUse", err)
	}
	if err := other.Ping(t.Context()); err != nil {
		t.Errorf("the other server no longer answers: %v", err)
	}
}

func TestStart_AfterStop_SamePortAgain(t *testing.T) {
	dir := t.TempDir()
	a := startOrSkip(t, Options{Dir: dir})
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(t.Context()); err == nil {
		t.Fatal("Ping answered after Stop")
	}
	b := startOrSkip(t, Options{Dir: dir, Port: a.Port()})
	if b.Port() != a.Port() || b.URL() != a.URL() {
		t.Fatalf("restarted on %s, want %s", b.URL(), a.URL())
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}
