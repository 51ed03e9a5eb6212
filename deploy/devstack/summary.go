package devstack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SummaryInterval is how often the terminal gets a summary line of the
// calls while there are any.
const SummaryInterval = 10 * time.Second

// ShowWarnings is a Service.Show that lets only warnings and errors (and
// lines in no format it knows, such as a panic's) reach the terminal: the
// services' info lines stay in their logs.
func ShowWarnings(line []byte) bool {
	lvl, ok := lineLevel(line)
	return !ok || lvl >= levelWarn
}

const (
	levelDebug = iota
	levelInfo
	levelWarn
	levelError
)

// lineLevel reads the level of a log line in the formats the services
// write: Go's slog text (level=WARN), zap's console encoding (the
// collector: "2026-01-02T...\twarn\t...") and JSON ("level":"warn").
func lineLevel(line []byte) (int, bool) {
	levels := []struct {
		names []string
		level int
	}{
		{[]string{"debug", "DEBUG"}, levelDebug},
		{[]string{"info", "INFO"}, levelInfo},
		{[]string{"warn", "WARN", "warning", "WARNING"}, levelWarn},
		{[]string{"error", "ERROR", "dpanic", "panic", "fatal", "DPANIC", "PANIC", "FATAL"}, levelError},
	}
	if i := bytes.Index(line, []byte("level=")); i >= 0 && (i == 0 || line[i-1] == ' ') {
		v := line[i+len("level="):]
		if j := bytes.IndexByte(v, ' '); j >= 0 {
			v = v[:j]
		}
		for _, l := range levels {
			for _, n := range l.names {
				// slog writes WARN+2 and the like for levels between.
				if bytes.Equal(v, []byte(n)) || bytes.HasPrefix(v, []byte(n+"+")) || bytes.HasPrefix(v, []byte(n+"-")) {
					return l.level, true
				}
			}
		}
	}
	for _, l := range levels {
		for _, n := range l.names {
			if bytes.Contains(line, []byte("\t"+n+"\t")) || bytes.Contains(line, []byte(`"level":"`+n+`"`)) {
				return l.level, true
			}
		}
	}
	return 0, false
}

// Summary turns Loom's per-call log lines (serve -log-calls; they stay in
// .loom/loom.log) into one terminal line per interval: how many calls, how
// many failed and why, latency percentiles, and from Loom's /metrics the
// spool's backlog and any dropped calls, which also get a warning.
type Summary struct {
	// MetricsURL is Loom's /metrics; "" leaves out the spool.
	MetricsURL string
	// CollectorMetricsURL is otelcol-loom's own metrics, FanoutExporter
	// the fan-out's exporter id (Fanout.ExporterID): with both, spans the
	// fan-out drops or fails get a warning. "" leaves them out.
	CollectorMetricsURL, FanoutExporter string
	// Interval between lines (default SummaryInterval).
	Interval time.Duration

	mu     sync.Mutex
	calls  int
	errs   map[string]int
	hist   [histBuckets]int
	maxDur time.Duration

	dropped float64 // loom_calls_dropped_total at the last line
	scraped bool
	// The fan-out's dropped and failed spans at the last line.
	fanLost    float64
	fanScraped bool
}

// Latency buckets: each 5% wider than the one before, from 10µs; the
// percentiles are good to 5%, in fixed memory whatever the rate.
const (
	histBuckets = 400
	histBase    = 10 * time.Microsecond
	histGrowth  = 1.05
)

func bucketOf(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	b := int(math.Log(float64(d)/float64(histBase)) / math.Log(histGrowth))
	return min(b, histBuckets-1)
}

func bucketValue(b int) time.Duration {
	return time.Duration(float64(histBase) * math.Pow(histGrowth, float64(b)+0.5))
}

// Show is the loom service's Show: a call line is counted and kept off the
// terminal; any other line is ShowWarnings'.
func (s *Summary) Show(line []byte) bool {
	if !bytes.Contains(line, []byte(" msg=call ")) {
		return ShowWarnings(line)
	}
	f := logfmt(line)
	status, _ := strconv.Atoi(f["status"])
	dur, _ := time.ParseDuration(f["duration"])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if et := f["error_type"]; et != "" || status >= 400 {
		if et == "" {
			et = strconv.Itoa(status)
		}
		if s.errs == nil {
			s.errs = map[string]int{}
		}
		s.errs[et]++
	}
	s.hist[bucketOf(dur)]++
	s.maxDur = max(s.maxDur, dur)
	return false
}

// logfmt reads the key=value pairs of a slog text line; quoted values are
// unquoted.
func logfmt(line []byte) map[string]string {
	m := map[string]string{}
	rest := string(bytes.TrimRight(line, "\r\n"))
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		if strings.HasPrefix(v, `"`) {
			q, err := strconv.QuotedPrefix(v)
			if err != nil {
				break
			}
			rest = v[len(q):]
			v, _ = strconv.Unquote(q)
		} else {
			v, rest, _ = strings.Cut(v, " ")
		}
		m[k] = v
	}
	return m
}

// Line is the summary of the calls since the last Line, or "" when there
// were none and nothing else is worth saying; warn is a warning to print
// first (calls dropped), or "".
func (s *Summary) Line(ctx context.Context) (line, warn string) {
	s.mu.Lock()
	calls, errs, hist, maxDur := s.calls, s.errs, s.hist, s.maxDur
	s.calls, s.errs, s.hist, s.maxDur = 0, nil, [histBuckets]int{}, 0
	s.mu.Unlock()

	var spool string
	if s.MetricsURL != "" {
		if m, err := scrape(ctx, s.MetricsURL, ""); err == nil {
			dropped := m["loom_calls_dropped"]
			if s.scraped && dropped > s.dropped {
				warn = fmt.Sprintf("devstack: warning: Loom dropped %.0f calls before the collector (loom_calls_dropped_total; see its log)", dropped-s.dropped)
			}
			s.dropped, s.scraped = dropped, true
			backlog := m["loom_spool_bytes"]
			if calls == 0 && backlog == 0 && warn == "" {
				return "", ""
			}
			spool = fmt.Sprintf("; spool backlog %s, %.0f dropped in all", byteSize(backlog), dropped)
		}
	}
	if fw := s.fanoutWarning(ctx); fw != "" {
		warn = strings.TrimPrefix(warn+"\n"+fw, "\n")
	}
	if calls == 0 && spool == "" {
		return "", warn
	}
	interval := s.Interval
	if interval == 0 {
		interval = SummaryInterval
	}
	b := fmt.Sprintf("devstack: last %s: %s (%.1f/s), %s", interval, plural(calls, "call"), float64(calls)/interval.Seconds(),
		plural(sum(errs), "error"))
	if len(errs) > 0 {
		b += " (" + topErrors(errs, 3) + ")"
	}
	if calls > 0 {
		b += fmt.Sprintf(", p50 %s p99 %s max %s", round(quantile(hist[:], calls, 0.50)),
			round(quantile(hist[:], calls, 0.99)), round(maxDur))
	}
	return b + spool, warn
}

// fanoutWarning is a warning when the fan-out exporter dropped spans (its
// queue full) or gave up on some since the last line, or "".
func (s *Summary) fanoutWarning(ctx context.Context) string {
	if s.CollectorMetricsURL == "" || s.FanoutExporter == "" {
		return ""
	}
	m, err := scrape(ctx, s.CollectorMetricsURL, `exporter="`+s.FanoutExporter+`"`)
	if err != nil {
		return ""
	}
	lost := m["otelcol_exporter_enqueue_failed_spans"] + m["otelcol_exporter_send_failed_spans"]
	was, seen := s.fanLost, s.fanScraped
	s.fanLost, s.fanScraped = lost, true
	if !seen || lost <= was {
		return ""
	}
	return fmt.Sprintf("devstack: warning: the fan-out to %s lost %.0f spans (queue full or gave up: otelcol_exporter_enqueue_failed_spans_total, "+
		"otelcol_exporter_send_failed_spans_total{exporter=%q}; see otelcol.log); Postgres has them", EnvOTLPEndpoint, lost-was, s.FanoutExporter)
}

// Run prints Line to term every Interval until ctx ends.
func (s *Summary) Run(ctx context.Context, term *Terminal) {
	interval := s.Interval
	if interval == 0 {
		interval = SummaryInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		line, warn := s.Line(ctx)
		if warn != "" {
			term.Printf("%s\n", warn)
		}
		if line != "" {
			term.Printf("%s\n", line)
		}
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// topErrors is the n commonest error types with their counts.
func topErrors(m map[string]int, n int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func quantile(hist []int, total int, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(total)))
	seen := 0
	for b, n := range hist {
		seen += n
		if seen >= rank {
			return bucketValue(b)
		}
	}
	return 0
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func byteSize(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// scrape reads a Prometheus text page into name → the sum of its samples
// whose labels contain match ("" for every label set). Names lose a
// _total suffix: the collector's reader adds it or not, as configured.
func scrape(ctx context.Context, url, match string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		labels := ""
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			if j := strings.LastIndexByte(line, '}'); j > i {
				labels, rest, ok = line[i:j+1], strings.TrimSpace(line[j+1:]), true
			}
		}
		if !ok || !strings.Contains(labels, match) {
			continue
		}
		name = strings.TrimSuffix(name, "_total")
		val, _, _ := strings.Cut(strings.TrimSpace(rest), " ") // a timestamp may follow
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] += v
		}
	}
	return m, sc.Err()
}
