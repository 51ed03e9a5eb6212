package faults_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/harness"
	"github.com/loom-gateway/loom/bench/loadgen"
)

// soakSample is one look at Loom during the soak.
type soakSample struct {
	at         time.Duration // since the load started
	rss        int64         // bytes (VmRSS)
	threads    int64
	goroutines int64 // -1 when /metrics did not answer
	fds        int64
	spool      int64 // bytes under the spool directory
	answered   int64 // calls answered so far
	failed     int64
	// backlog is answered calls not yet stored (SERVER rows in
	// Postgres): a backlog that grows is a pipeline that cannot keep up
	// with the rate, whatever Loom's own numbers say. -1: not read.
	backlog int64
}

// soakMetric is one plotted and checked series.
type soakMetric struct {
	name, unit string
	scale      float64 // value / scale is what the plot and the table show
	of         func(soakSample) int64
	// slack is the growth allowed from the middle third's mean to the last
	// third's, beyond the relative tolerance: a handful of goroutines or
	// files, a segment of spool.
	slack int64
}

// soakTolerance is how much the last third's mean may exceed the middle
// third's: flat, not exactly level.
const soakTolerance = 0.20

func soakMetrics(segment int64, rate float64) []soakMetric {
	return []soakMetric{
		{"RSS", "MiB", 1 << 20, func(s soakSample) int64 { return s.rss }, 8 << 20},
		{"goroutines", "", 1, func(s soakSample) int64 { return s.goroutines }, 20},
		{"open files", "", 1, func(s soakSample) int64 { return s.fds }, 20},
		{"spool", "MiB", 1 << 20, func(s soakSample) int64 { return s.spool }, 2 * segment},
		{"threads", "", 1, func(s soakSample) int64 { return s.threads }, 4},
		{"backlog (answered, not yet stored)", "", 1, func(s soakSample) int64 { return s.backlog }, int64(rate * 5)},
	}
}

// TestSoak runs LOOM_SOAK (a duration) of mixed calls at LOOM_SOAK_RPS
// (default 1,000) through the real stack, samples Loom every few seconds,
// writes a report with plots to LOOM_SOAK_OUT (default a new temporary
// directory), and asserts that nothing grows: for each metric, the mean of
// the last third of the run within 20 % (plus a small absolute slack) of
// the middle third's. The first third is warm-up.
func TestSoak(t *testing.T) {
	v := os.Getenv(envSoak)
	if v == "" {
		t.Skipf("the soak runs for half an hour: set %s=DURATION (make soak)", envSoak)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 30*time.Second {
		t.Fatalf("%s=%q: want a duration of at least 30s", envSoak, v)
	}
	rate := 1000.0
	if v := os.Getenv("LOOM_SOAK_RPS"); v != "" {
		if rate, err = strconv.ParseFloat(v, 64); err != nil || rate <= 0 {
			t.Fatalf("LOOM_SOAK_RPS=%q: want a positive number", v)
		}
	}
	out := os.Getenv("LOOM_SOAK_OUT")
	if out == "" {
		out = t.TempDir()
	}
	out = filepath.Join(out, time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	const segment = 4 << 20 // small segments, so shipped ones are deleted often and growth shows
	st := startStack(t, stackOptions{segmentBytes: segment})
	const clients = 1000 // under Loom's default connections.max_per_ip
	c := newClient(st, clients)
	defer c.close()

	var next, answeredN, failedN atomic.Int64
	var errMu sync.Mutex
	errs := map[string]int{}
	call := func(ctx context.Context, _ time.Time) (loadgen.Sample, error) {
		o := c.do(ctx, int(next.Add(1)-1))
		if o.state == answered || o.state == aborted {
			answeredN.Add(1)
			return loadgen.Sample{Overhead: loadgen.None, Service: loadgen.None}, nil
		}
		failedN.Add(1)
		errMu.Lock()
		if len(errs) < 20 {
			errs[o.state.String()+": "+o.err]++
		}
		errMu.Unlock()
		return loadgen.Sample{}, errors.New(o.state.String())
	}

	db := connect(t, st.dbURL)
	every := min(max(d/240, time.Second), 10*time.Second)
	var samples []soakSample
	began := time.Now()
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				s := sampleLoom(st)
				s.at, s.answered, s.failed = time.Since(began), answeredN.Load(), failedN.Load()
				s.backlog = -1
				ctx, cancel := context.WithTimeout(t.Context(), every)
				var stored int64
				if err := db.QueryRow(ctx, `select count(*) from loom.spans where kind = 'server'`).Scan(&stored); err == nil {
					s.backlog = max(s.answered-stored, 0)
				}
				cancel()
				samples = append(samples, s)
			}
		}
	}()
	res, err := loadgen.Run(t.Context(), loadgen.Plan{Rate: rate, Duration: d, MaxInFlight: clients}, call)
	close(stopSampling)
	<-sampled
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	metrics := soakMetrics(segment, rate)
	verdicts := make([]string, len(metrics))
	for i, m := range metrics {
		verdicts[i] = flat(m, samples)
	}
	if err := writeSoakReport(out, d, rate, res, samples, metrics, verdicts, errs); err != nil {
		t.Fatal(err)
	}
	t.Logf("soak report: %s", filepath.Join(out, "soak.md"))
	t.Logf("%d calls sent, %d answered, %d failed, %.0f/s answered; late starts %d",
		res.Sent, answeredN.Load(), failedN.Load(), float64(answeredN.Load())/res.Elapsed.Seconds(), res.Late)
	for i, m := range metrics {
		if verdicts[i] != "" {
			t.Errorf("%s is not flat: %s", m.name, verdicts[i])
		}
	}
	if f := failedN.Load(); f > res.Sent/1000 {
		t.Errorf("%d of %d calls failed (over 0.1 %%): %v", f, res.Sent, errs)
	}
}

// sampleLoom reads Loom's process and spool as they are now.
func sampleLoom(st *stack) soakSample {
	s := soakSample{goroutines: -1}
	pid := st.loom.pid()
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				s.rss = kb << 10
			} else if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				s.threads, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = int64(len(fds))
	}
	_ = filepath.WalkDir(st.spoolDir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				s.spool += fi.Size()
			}
		}
		return nil // a segment deleted while we walk is not an error
	})
	s.goroutines = goroutines(st.opsAddr)
	return s
}

// goroutines is Loom's go_goroutines from its ops listener, or -1.
func goroutines(ops string) int64 {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + ops + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// flat returns "" when m's last third stays within soakTolerance (plus its
// slack) of its middle third, else what grew.
func flat(m soakMetric, samples []soakSample) string {
	if len(samples) < 6 {
		return fmt.Sprintf("only %d samples", len(samples))
	}
	third := len(samples) / 3
	mid, last := mean(m, samples[third:2*third]), mean(m, samples[2*third:])
	if mid < 0 || last < 0 {
		return "not measured"
	}
	if limit := mid*(1+soakTolerance) + float64(m.slack); last > limit {
		return fmt.Sprintf("middle third %.1f%s, last third %.1f%s (limit %.1f%s)", mid/m.scale, m.unit, last/m.scale, m.unit, limit/m.scale, m.unit)
	}
	return ""
}

// mean of m over the samples that have it (a read can time out on a
// loaded machine); -1 if none has.
func mean(m soakMetric, samples []soakSample) float64 {
	var sum float64
	n := 0
	for _, s := range samples {
		if v := m.of(s); v >= 0 {
			sum += float64(v)
			n++
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}

func writeSoakReport(dir string, d time.Duration, rate float64, res loadgen.Result, samples []soakSample, metrics []soakMetric, verdicts []string, errs map[string]int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: %v at %.0f calls/s, mixed\n\n", d, rate)
	fmt.Fprintf(&b, "Loom, otelcol-loom, PostgreSQL and the mock upstream as real processes; unary and streamed chat from two tenants, "+
		"with 0.5 %% upstream stream resets, 0.5 %% client aborts and 1 %% upstream errors. Calls sent %d, late starts %d, answered per second %.0f. ",
		res.Sent, res.Late, float64(res.OK)/res.Elapsed.Seconds())
	fmt.Fprintf(&b, "Latency p50 %v, p99 %v, max %v.\n\n", quantile(res, 0.5), quantile(res, 0.99), quantile(res, 1))
	if res.Late > res.Sent/10 {
		fmt.Fprintf(&b, "**The stack did not keep the rate**: %d of %d calls started over 1 ms late (at most %d in flight). "+
			"What follows measures an overloaded stack; a growing backlog and spool then say the pipeline is slower than the rate, not that Loom leaks.\n\n",
			res.Late, res.Sent, res.Workers)
	}
	b.WriteString("Flatness: the mean of the last third of the run within 20 % (plus a small slack) of the middle third's; the first third is warm-up.\n\n")
	b.WriteString("| metric | first third | middle third | last third | verdict |\n|---|---|---|---|---|\n")
	third := max(len(samples)/3, 1)
	for i, m := range metrics {
		verdict := "flat"
		if verdicts[i] != "" {
			verdict = "**" + verdicts[i] + "**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", m.name, show(m, samples[:min(third, len(samples))]),
			show(m, samples[min(third, len(samples)):min(2*third, len(samples))]), show(m, samples[min(2*third, len(samples)):]), verdict)
	}
	if len(errs) > 0 {
		b.WriteString("\nFailed calls (first kinds):\n\n")
		for e, n := range errs {
			fmt.Fprintf(&b, "- %d × %s\n", n, e)
		}
	}
	b.WriteString("\n![Loom over the soak](soak.svg)\n\n| t (s) | RSS (MiB) | goroutines | threads | open files | spool (MiB) | answered | failed | backlog |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "| %.0f | %.1f | %d | %d | %d | %.1f | %d | %d | %d |\n", s.at.Seconds(), float64(s.rss)/(1<<20), s.goroutines, s.threads, s.fds,
			float64(s.spool)/(1<<20), s.answered, s.failed, s.backlog)
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "soak.svg"))
	if err != nil {
		return err
	}
	writeSoakSVG(f, samples, metrics)
	return f.Close()
}

func quantile(res loadgen.Result, q float64) time.Duration {
	if res.Latency == nil {
		return 0
	}
	return time.Duration(res.Latency.Quantile(q)).Round(time.Microsecond)
}

func show(m soakMetric, samples []soakSample) string {
	if len(samples) == 0 {
		return "-"
	}
	v := mean(m, samples)
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%s", v/m.scale, m.unit)
}

// writeSoakSVG draws one panel per metric over time, plus the answered
// rate, with the thirds marked.
func writeSoakSVG(w io.Writer, samples []soakSample, metrics []soakMetric) {
	const pw, ph, pad = 420, 200, 50
	type series struct {
		title string
		ys    []float64
	}
	var all []series
	for _, m := range metrics {
		s := series{title: m.name}
		if m.unit != "" {
			s.title += " (" + m.unit + ")"
		}
		for _, x := range samples {
			s.ys = append(s.ys, float64(m.of(x))/m.scale)
		}
		all = append(all, s)
	}
	rateSeries := series{title: "answered calls/s"}
	for i, x := range samples {
		var prev soakSample
		if i > 0 {
			prev = samples[i-1]
		}
		dt := (x.at - prev.at).Seconds()
		rateSeries.ys = append(rateSeries.ys, float64(x.answered-prev.answered)/math.Max(dt, 1e-9))
	}
	all = append(all, rateSeries)
	cols := 2
	rows := (len(all) + cols - 1) / cols
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", cols*pw, rows*ph+20)
	fmt.Fprintln(w, `<rect width="100%" height="100%" fill="white"/>`)
	tmax := 1.0
	if len(samples) > 0 {
		tmax = math.Max(samples[len(samples)-1].at.Seconds(), 1)
	}
	for i, s := range all {
		ox, oy := float64((i%cols)*pw), float64((i/cols)*ph)
		ymax := 0.0
		for _, y := range s.ys {
			ymax = math.Max(ymax, y)
		}
		ymax = harness.NiceCeil(ymax * 1.1)
		px := func(t float64) float64 { return ox + pad + t/tmax*(pw-pad-20) }
		py := func(v float64) float64 { return oy + ph - 30 - v/ymax*(ph-60) }
		fmt.Fprintf(w, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", ox+pad, oy+16, s.title)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", px(0), py(0), px(tmax), py(0))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", px(0), py(0), px(0), py(ymax))
		for _, f := range []float64{1.0 / 3, 2.0 / 3} {
			fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd" stroke-dasharray="4"/>`+"\n", px(f*tmax), py(0), px(f*tmax), py(ymax))
		}
		for _, f := range []float64{0, 0.5, 1} {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%.4g</text>`+"\n", px(0)-4, py(f*ymax)+4, f*ymax)
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%.0f s</text>`+"\n", px(tmax), py(0)+14, tmax)
		var pts []string
		for k, y := range s.ys {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(samples[k].at.Seconds()), py(y)))
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="#d95f02" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(pts, " "))
	}
	fmt.Fprintf(w, `<text x="10" y="%d" fill="#555">Loom during the soak; dashed lines split warm-up, middle and last thirds</text>`+"\n", rows*ph+12)
	fmt.Fprintln(w, "</svg>")
}
