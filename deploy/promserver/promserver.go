// Package promserver runs a local Prometheus server from the machine's
// prometheus binary (Debian's prometheus package), for tests that check what
// a real Prometheus makes of Loom's and otelcol-loom's metrics: a temporary
// directory, a free port, a scrape configuration generated for the given
// targets with a short scrape interval, and a client for the query and
// targets APIs. See promtest for the throwaway server a test gets.
//
// It must never listen beyond 127.0.0.1, never scrape anything it was not
// given, and never touch a server it did not start: it checks that the
// server answering on its port stores into its own directory.
package promserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/process"
)

// Options say where a server runs and what it scrapes.
type Options struct {
	// Dir is the server's directory, created if missing: its configuration
	// (prometheus.yml), its TSDB (data/) and its log (prometheus.log).
	Dir string
	// Port is the TCP port on 127.0.0.1. Zero picks a free one.
	Port int
	// ScrapeInterval is how often every target is scraped (also the scrape
	// timeout); zero means DefaultScrapeInterval.
	ScrapeInterval time.Duration
	// Jobs are the scrape jobs, each a static list of targets.
	Jobs []Job
}

// Job is one scrape job.
type Job struct {
	// Name is the job label of its series; names must be distinct.
	Name string
	// MetricsPath is the path scraped on each target; empty is /metrics.
	MetricsPath string
	Targets     []Target
}

// Target is one scraped endpoint.
type Target struct {
	// Addr is host:port, scraped over plain HTTP.
	Addr string
	// Labels are added to every series scraped from it (e.g. replica="a").
	Labels map[string]string
}

// DefaultScrapeInterval is short, so a test waits at most about a second for
// the scrape that sees what it just did.
const DefaultScrapeInterval = time.Second

// Files in Options.Dir.
const (
	ConfigName = "prometheus.yml"
	LogName    = "prometheus.log"
	DataName   = "data"
)

// startTimeout bounds the wait for readiness when ctx has no deadline.
const startTimeout = 60 * time.Second

// maxAnswer bounds what the client reads of one API answer.
const maxAnswer = 64 << 20

// errPortInUse means the server lost the race for a port picked for it.
var errPortInUse = errors.New("port in use")

// Server is a prometheus process started by Start.
type Server struct {
	proc    *process.Process
	dir     string
	data    string
	logFile string
	port    int
	client  *http.Client
	stop    sync.Once
	stopErr error
}

// Start writes the scrape configuration, runs prometheus on 127.0.0.1,
// equivalent to
//
//	prometheus --config.file DIR/prometheus.yml --storage.tsdb.path DIR/data \
//	  --web.listen-address 127.0.0.1:PORT
//
// and returns once it is ready. ctx bounds the start only: the server runs
// until Stop. With Port zero a port that another program takes first is
// retried with a new one.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("promserver: Options.Dir is empty")
	}
	cfg, err := Config(o)
	if err != nil {
		return nil, err
	}
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("prometheus directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("prometheus directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigName), cfg, 0o600); err != nil {
		return nil, fmt.Errorf("prometheus configuration: %w", err)
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

// Config is the prometheus.yml that Start writes for o. It is JSON, which
// YAML reads as it is: no quoting of label values to get wrong.
func Config(o Options) ([]byte, error) {
	every := o.ScrapeInterval
	if every == 0 {
		every = DefaultScrapeInterval
	}
	if every < 0 {
		return nil, fmt.Errorf("promserver: ScrapeInterval %v is negative", every)
	}
	type static struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels,omitempty"`
	}
	type scrape struct {
		JobName       string   `json:"job_name"`
		MetricsPath   string   `json:"metrics_path"`
		StaticConfigs []static `json:"static_configs"`
	}
	var errs []error
	seen := map[string]bool{}
	scrapes := make([]scrape, 0, len(o.Jobs))
	for i, j := range o.Jobs {
		switch {
		case j.Name == "":
			errs = append(errs, fmt.Errorf("promserver: Jobs[%d].Name is empty", i))
		case seen[j.Name]:
			errs = append(errs, fmt.Errorf("promserver: Jobs[%d].Name %q is used twice", i, j.Name))
		}
		seen[j.Name] = true
		sc := scrape{JobName: j.Name, MetricsPath: j.MetricsPath}
		if sc.MetricsPath == "" {
			sc.MetricsPath = "/metrics"
		}
		for k, t := range j.Targets {
			if _, _, err := net.SplitHostPort(t.Addr); err != nil {
				errs = append(errs, fmt.Errorf("promserver: Jobs[%d].Targets[%d].Addr %q: %w", i, k, t.Addr, err))
			}
			sc.StaticConfigs = append(sc.StaticConfigs, static{Targets: []string{t.Addr}, Labels: t.Labels})
		}
		scrapes = append(scrapes, sc)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	d := every.String()
	return json.MarshalIndent(map[string]any{
		"global":         map[string]string{"scrape_interval": d, "scrape_timeout": d, "evaluation_interval": d},
		"scrape_configs": scrapes,
	}, "", "  ")
}

func start(ctx context.Context, bin, dir string, port int) (*Server, error) {
	logFile := filepath.Join(dir, LogName)
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("prometheus log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	offset, _ := logf.Seek(0, io.SeekEnd)
	s := &Server{dir: dir, data: filepath.Join(dir, DataName), logFile: logFile, port: port,
		client: &http.Client{Timeout: 10 * time.Second}}
	// Not CommandContext: ctx bounds the start, and the server outlives it.
	cmd := exec.Command(bin,
		"--config.file", filepath.Join(dir, ConfigName),
		"--storage.tsdb.path", s.data,
		"--web.listen-address", s.Addr(),
		"--log.level", "warn",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// In its own process group, and ended by the kernel if the process that
	// started it dies without calling Stop (see process.Start).
	if s.proc, err = process.Start(cmd); err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	if err := s.waitReady(ctx, offset); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls /-/ready until the server is ready, exits or ctx ends,
// then checks that the server on the port stores into this directory: one
// that another program left there would answer /-/ready while ours fails to
// bind.
func (s *Server) waitReady(ctx context.Context, logOffset int64) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		// An exit wins over another poll: whatever holds the port may
		// accept connections and never answer them.
		if s.proc.Exited() {
			log := bytes.TrimSpace(s.logSince(logOffset))
			if bytes.Contains(log, []byte("address already in use")) {
				return fmt.Errorf("prometheus on port %d: %w (%s): %s", s.port, errPortInUse, s.logFile, log)
			}
			return fmt.Errorf("prometheus exited (%w; log %s): %s", s.proc.Wait(), s.logFile, log)
		}
		select {
		case <-s.proc.Done():
			continue
		case <-ctx.Done():
			return fmt.Errorf("prometheus on port %d not ready: %w (last: %w)", s.port, ctx.Err(), err)
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = s.checkReady(pctx)
		cancel()
		if err == nil {
			return nil
		}
	}
}

// checkReady is one poll of waitReady.
func (s *Server) checkReady(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	var flags map[string]string
	if err := s.get(ctx, "/api/v1/status/flags", nil, &flags); err != nil {
		return err
	}
	if got := flags["storage.tsdb.path"]; got != s.data {
		return fmt.Errorf("port %d answers as another prometheus (storage %q)", s.port, got)
	}
	return nil
}

func (s *Server) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/-/ready", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /-/ready: %s", resp.Status)
	}
	return nil
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

// Sample is one series of a query's answer at one instant.
type Sample struct {
	Metric map[string]string
	Value  float64
	Time   time.Time
}

// Vector is an instant query's answer.
type Vector []Sample

// Sum is the sum of the samples' values; 0 for no samples.
func (v Vector) Sum() float64 {
	var sum float64
	for _, s := range v {
		sum += s.Value
	}
	return sum
}

// Query evaluates the PromQL expression expr at the instant at (zero: now)
// through /api/v1/query. A scalar answer comes back as one sample without
// labels; a range vector or a string is an error.
func (s *Server) Query(ctx context.Context, expr string, at time.Time) (Vector, error) {
	q := url.Values{"query": {expr}}
	if !at.IsZero() {
		q.Set("time", strconv.FormatFloat(float64(at.UnixNano())/1e9, 'f', 3, 64))
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.get(ctx, "/api/v1/query", q, &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	switch data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, fmt.Errorf("query %s: %w", expr, err)
		}
		v := make(Vector, len(raw))
		for i, r := range raw {
			t, x, err := point(r.Value)
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", expr, err)
			}
			v[i] = Sample{Metric: r.Metric, Value: x, Time: t}
		}
		return v, nil
	case "scalar":
		var r [2]any
		if err := json.Unmarshal(data.Result, &r); err != nil {
			return nil, fmt.Errorf("query %s: %w", expr, err)
		}
		t, x, err := point(r)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", expr, err)
		}
		return Vector{{Value: x, Time: t}}, nil
	default:
		return nil, fmt.Errorf("query %s: a %s, not an instant vector or a scalar", expr, data.ResultType)
	}
}

// point reads the API's [unix seconds, "value"] pair.
func point(p [2]any) (time.Time, float64, error) {
	ts, ok := p[0].(float64)
	str, ok2 := p[1].(string)
	if !ok || !ok2 {
		return time.Time{}, 0, fmt.Errorf("sample %v: want [seconds, \"value\"]", p)
	}
	x, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("sample value %q: %w", str, err)
	}
	return time.Unix(0, int64(ts*1e9)), x, nil
}

// TargetState is what the server says of one of its targets.
type TargetState struct {
	Job        string
	ScrapeURL  string
	Labels     map[string]string
	Health     string // "up", "down" or "unknown" (not scraped yet)
	LastScrape time.Time
	LastError  string
}

// Targets lists the active targets with the state of their last scrape.
func (s *Server) Targets(ctx context.Context) ([]TargetState, error) {
	var data struct {
		ActiveTargets []struct {
			ScrapePool string            `json:"scrapePool"`
			ScrapeURL  string            `json:"scrapeUrl"`
			Labels     map[string]string `json:"labels"`
			Health     string            `json:"health"`
			LastScrape time.Time         `json:"lastScrape"`
			LastError  string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := s.get(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	out := make([]TargetState, len(data.ActiveTargets))
	for i, t := range data.ActiveTargets {
		out[i] = TargetState{Job: t.ScrapePool, ScrapeURL: t.ScrapeURL, Labels: t.Labels, Health: t.Health,
			LastScrape: t.LastScrape, LastError: t.LastError}
	}
	return out, nil
}

// WaitScraped polls until every target of job has been scraped
// successfully after the instant after, and returns the instant it saw
// that: a query at that time reads what each target said then or later.
// It fails when ctx ends first, naming the targets still behind. Allow for
// some seconds after Start: Prometheus hands even static targets to its
// scrapers only at its discovery's next update (every 5 s).
func (s *Server) WaitScraped(ctx context.Context, job string, after time.Time) (time.Time, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var behind []string
	for {
		ts, err := s.Targets(ctx)
		if err == nil {
			behind = behind[:0]
			n := 0
			for _, t := range ts {
				if t.Job != job {
					continue
				}
				n++
				if t.Health != "up" || !t.LastScrape.After(after) {
					behind = append(behind, fmt.Sprintf("%s (health %s, last scrape %s, error %q)",
						t.ScrapeURL, t.Health, t.LastScrape.Format(time.RFC3339Nano), t.LastError))
				}
			}
			if n == 0 {
				behind = append(behind, "no target of job "+job)
			} else if len(behind) == 0 {
				return time.Now(), nil
			}
		} else if ctx.Err() == nil {
			behind = append(behind[:0], err.Error())
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("job %s not scraped after %s: %w: %v", job, after.Format(time.RFC3339Nano), ctx.Err(), behind)
		case <-tick.C:
		}
	}
}

// get calls the HTTP API and decodes the data of a success into out.
func (s *Server) get(ctx context.Context, path string, q url.Values, out any) error {
	u := s.URL() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return err
	}
	if len(body) > maxAnswer {
		return fmt.Errorf("GET %s: answer over %d bytes", path, maxAnswer)
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %w", path, resp.Status, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s: %s", path, resp.Status, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// Stop ends the server (SIGTERM, then a kill after process.Grace) and waits
// for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.stop.Do(func() {
		if err := s.proc.Stop(process.Grace); err != nil {
			s.stopErr = fmt.Errorf("stop prometheus: %w", err)
		}
	})
	return s.stopErr
}

// URL is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir is the absolute directory of the configuration, data and log.
func (s *Server) Dir() string { return s.dir }

// LogFile is the server's log.
func (s *Server) LogFile() string { return s.logFile }
