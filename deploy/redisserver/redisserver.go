// Package redisserver runs a local Redis server from the machine's
// redis-server binary: throwaway ones for tests (see redistest) and any
// local stack that needs shared counters. The server keeps nothing on disk
// (no RDB snapshots, no append-only file), so a stop loses every key. It
// must never listen beyond 127.0.0.1 and never touch a server it did not
// start. It links no Redis client: it speaks just enough RESP to send PING.
package redisserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/process"
)

// Options say where a server runs.
type Options struct {
	// Dir is the server's working directory (--dir), created if missing.
	// The server writes only its log there (redis.log); it persists nothing.
	Dir string
	// Port is the TCP port on 127.0.0.1. Zero picks a free one.
	Port int
}

// Server is a redis-server process started by Start.
type Server struct {
	proc    *process.Process
	dir     string
	logFile string
	port    int
	stop    sync.Once
	stopErr error
}

// LogName is the file in Options.Dir that receives the server's log.
const LogName = "redis.log"

// startTimeout bounds the wait for the first PONG when ctx has no deadline.
const startTimeout = 30 * time.Second

// errPortInUse means the server lost the race for a port picked for it.
var errPortInUse = errors.New("port in use")

// Start runs redis-server on 127.0.0.1 without persistence, equivalent to
//
//	redis-server --port P --bind 127.0.0.1 --save '' --appendonly no --dir DIR
//
// and returns once it answers PING. ctx bounds the start only: the server
// runs until Stop. With Port zero a port that another program takes first
// is retried with a new one.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("redisserver: Options.Dir is empty")
	}
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("redis directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("redis directory: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	return freeport.Try(o.Port, errPortInUse, func(port int) (*Server, error) {
		return start(ctx, bin, dir, port)
	})
}

func start(ctx context.Context, bin, dir string, port int) (*Server, error) {
	logFile := filepath.Join(dir, LogName)
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("redis log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	offset, _ := logf.Seek(0, 2)
	// Not CommandContext: ctx bounds the start, and the server outlives it.
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// In its own process group, so a terminal's Ctrl-C does not reach the
	// server before Stop does; on Linux the kernel ends it if the process
	// that started it dies without calling Stop (a test binary killed by
	// its timeout), so none is left running.
	proc, err := process.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{proc: proc, dir: dir, logFile: logFile, port: port}
	if err := s.waitReady(ctx, offset); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls until the server answers as this process, exits or ctx
// ends. It asks INFO for the process id, not just PING: a server that some
// other program left on the port would answer PING while ours fails to bind.
func (s *Server) waitReady(ctx context.Context, logOffset int64) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		select {
		case <-s.proc.Done():
			log := bytes.TrimSpace(s.logSince(logOffset))
			if bytes.Contains(log, []byte("Address already in use")) {
				return fmt.Errorf("redis-server on port %d: %w (%s): %s", s.port, errPortInUse, s.logFile, log)
			}
			return fmt.Errorf("redis-server exited (%w; log %s): %s", s.proc.Wait(), s.logFile, log)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on port %d did not answer: %w (last: %w)", s.port, ctx.Err(), err)
		case <-tick.C:
		}
		var info []byte
		if info, err = s.roundTrip(ctx, "INFO server", 250*time.Millisecond); err != nil {
			continue
		}
		want := "process_id:" + strconv.Itoa(s.proc.Pid()) + "\r\n"
		if bytes.Contains(info, []byte(want)) {
			return nil
		}
		err = fmt.Errorf("port %d answers as another server", s.port)
	}
}

// logSince returns the log written after offset, at most its last 2 KiB.
func (s *Server) logSince(offset int64) []byte {
	b, _ := os.ReadFile(s.logFile)
	if offset < int64(len(b)) {
		b = b[offset:]
	} else {
		b = nil
	}
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return b
}

// Ping sends PING and checks for PONG; it fails while the server loads or
// after it stopped.
func (s *Server) Ping(ctx context.Context) error {
	reply, err := s.roundTrip(ctx, "PING", time.Second)
	if err != nil {
		return err
	}
	if string(reply) != "PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

// roundTrip sends one inline command on a new connection and returns a
// simple or bulk string reply; an error reply is an error.
func (s *Server) roundTrip(ctx context.Context, cmd string, timeout time.Duration) ([]byte, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return []byte(line[1:]), nil
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 || n > 1<<20 {
			return nil, fmt.Errorf("%s: bad reply %q", cmd, line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return b[:n], nil
	default:
		return nil, fmt.Errorf("%s: reply %q", cmd, line)
	}
}

// Stop ends the server (SIGTERM, then a kill after process.Grace) and
// waits for it to exit; its keys are gone. Stopping a stopped server does
// nothing.
func (s *Server) Stop() error {
	s.stop.Do(func() {
		if err := s.proc.Stop(process.Grace); err != nil {
			s.stopErr = fmt.Errorf("stop redis-server: %w", err)
		}
	})
	return s.stopErr
}

// Running reports whether the process is still there (it may not answer
// yet, or any more).
func (s *Server) Running() bool { return !s.proc.Exited() }

// URL is the server's redis:// URL, database 0, no password.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir is the absolute working directory.
func (s *Server) Dir() string { return s.dir }
