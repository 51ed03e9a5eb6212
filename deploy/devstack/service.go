package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loom-gateway/loom/deploy/process"
)

// Service is one process of the stack.
type Service struct {
	Name string
	Path string
	Args []string
	// Env is added to devstack's own environment.
	Env []string
	// Show reports whether a line of the service's output goes to the
	// terminal too; its log file gets every line. Nil shows them all.
	Show func(line []byte) bool
	// Ready returns nil once the service can take requests. It is polled
	// until it does, the process exits, or ReadyTimeout passes. Nil means
	// ready as soon as the process started.
	Ready func(ctx context.Context) error
}

// HTTPReady is a readiness check that wants 200 from GET url.
func HTTPReady(url string) func(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// Stack starts services in order, each once the one before is ready, and
// stops them in reverse order. Each service's output goes to LogDir/NAME.log
// and, prefixed with its name, to Out (the lines its Show lets through).
type Stack struct {
	Services []Service
	LogDir   string
	Out      *Terminal
	// ReadyTimeout bounds each service's start; StopTimeout is how long a
	// service may take to exit after SIGTERM before it is killed (default
	// process.Grace).
	ReadyTimeout time.Duration
	StopTimeout  time.Duration

	procs  []*proc
	exited chan *proc
}

type proc struct {
	svc  Service
	proc *process.Process
	log  *os.File
	out  *lineWriter
	done chan struct{} // closed once the process has exited and its output is copied
	err  error         // cmd.Wait's result, set before done closes
}

// Start starts every service and waits for each to be ready. On failure the
// services already started are stopped.
func (s *Stack) Start(ctx context.Context) error {
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = 30 * time.Second
	}
	if s.StopTimeout == 0 {
		s.StopTimeout = process.Grace
	}
	s.exited = make(chan *proc, len(s.Services))
	width := 0
	for _, svc := range s.Services {
		width = max(width, len(svc.Name))
	}
	for _, svc := range s.Services {
		p, err := s.start(svc, width)
		if err == nil {
			err = s.awaitReady(ctx, p)
		}
		if err != nil {
			s.Stop()
			return err
		}
	}
	return nil
}

func (s *Stack) start(svc Service, width int) (*proc, error) {
	logPath := filepath.Join(s.LogDir, svc.Name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", svc.Name, err)
	}
	p := &proc{svc: svc, log: f, done: make(chan struct{})}
	p.out = s.Out.prefixed(fmt.Sprintf("%-*s | ", width, svc.Name))
	p.out.show = svc.Show
	cmd := exec.Command(svc.Path, svc.Args...)
	cmd.Env = append(os.Environ(), svc.Env...)
	// One writer for both streams: exec then copies them in one goroutine,
	// so lines are never torn.
	w := io.MultiWriter(f, p.out)
	cmd.Stdout, cmd.Stderr = w, w
	if p.proc, err = process.Start(cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", svc.Name, err)
	}
	s.procs = append(s.procs, p)
	go func() {
		p.err = p.proc.Wait()
		p.out.flush()
		close(p.done)
		s.exited <- p
	}()
	return p, nil
}

func (s *Stack) awaitReady(ctx context.Context, p *proc) error {
	if p.svc.Ready == nil {
		return nil
	}
	deadline := time.NewTimer(s.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = p.svc.Ready(ctx); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%s): see %s", p.svc.Name, exitText(p.err), p.log.Name())
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", p.svc.Name, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%s not ready after %s: %w", p.svc.Name, s.ReadyTimeout, last)
		case <-tick.C:
		}
	}
}

// ErrExited reports that a service stopped on its own.
var ErrExited = errors.New("service exited")

// Wait runs until ctx ends, then stops the stack and returns nil; or until a
// service exits on its own, then stops the others and returns an error
// wrapping ErrExited.
func (s *Stack) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		s.Stop()
		return nil
	case p := <-s.exited:
		s.Stop()
		return fmt.Errorf("%s %w (%s): see %s", p.svc.Name, ErrExited, exitText(p.err), p.log.Name())
	}
}

// Stop ends the services in reverse order of start: SIGTERM, then a kill
// after StopTimeout. It waits for each to exit.
func (s *Stack) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		err := p.proc.Stop(s.StopTimeout)
		<-p.done // its output is flushed
		switch {
		case errors.Is(err, process.ErrKilled):
			s.Out.Printf("devstack: %s still running %s after SIGTERM; killing it\n", p.svc.Name, s.StopTimeout)
		case err != nil:
			s.Out.Printf("devstack: stop %s: %v\n", p.svc.Name, err)
		}
		p.log.Close()
	}
	s.procs = nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Terminal serialises the lines that services and devstack print.
type Terminal struct {
	mu sync.Mutex
	w  io.Writer
}

// NewTerminal writes to w.
func NewTerminal(w io.Writer) *Terminal { return &Terminal{w: w} }

// Printf prints whole lines, never interleaved with a service's.
func (t *Terminal) Printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, format, args...)
}

func (t *Terminal) prefixed(prefix string) *lineWriter {
	return &lineWriter{t: t, prefix: []byte(prefix)}
}

// lineWriter prefixes each complete line; a partial line waits for its end.
// Write is called from one goroutine at a time (exec's copier).
type lineWriter struct {
	t      *Terminal
	prefix []byte
	buf    []byte
	show   func(line []byte) bool // nil: every line
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	i := bytes.LastIndexByte(l.buf, '\n')
	if i < 0 {
		if len(l.buf) < 64<<10 {
			return len(p), nil
		}
		l.buf, i = append(l.buf, '\n'), len(l.buf) // an endless line still shows up
	}
	l.emit(l.buf[:i+1])
	l.buf = append(l.buf[:0], l.buf[i+1:]...)
	return len(p), nil
}

func (l *lineWriter) emit(lines []byte) {
	var out []byte
	for line := range strings.Lines(string(lines)) {
		if l.show != nil && !l.show([]byte(line)) {
			continue
		}
		out = append(out, l.prefix...)
		out = append(out, line...)
	}
	if len(out) == 0 {
		return
	}
	l.t.mu.Lock()
	_, _ = l.t.w.Write(out)
	l.t.mu.Unlock()
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = l.buf[:0]
	}
}
