package promserver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/promserver"
	"github.com/loom-gateway/loom/deploy/promserver/promtest"
)

func TestConfig_EveryBadJobReportedAtOnce(t *testing.T) {
	_, err := promserver.Config(promserver.Options{Jobs: []promserver.Job{
		{Name: "", Targets: []promserver.Target{{Addr: "127.0.0.1:1"}}},
		{Name: "a", Targets: []promserver.Target{{Addr: "127.0.0.1:2"}}},
		{Name: "a", Targets: []promserver.Target{{Addr: "no-port"}}},
	}})
	for _, want := range []string{"Jobs[0].Name is empty", `Jobs[2].Name "a" is used twice`, `Jobs[2].Targets[0].Addr "no-port"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Config error %v; want it to say %q", err, want)
		}
	}
	if _, err := promserver.Config(promserver.Options{ScrapeInterval: -time.Second}); err == nil {
		t.Error("a negative scrape interval was accepted")
	}
}

// metricsServer serves one counter in the Prometheus text format, its value
// set by the test, and counts the scrapes.
type metricsServer struct {
	value, scrapes atomic.Int64
	addr           string
}

func startMetrics(t *testing.T) *metricsServer {
	m := &metricsServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/custom/metrics" {
			http.NotFound(w, r)
			return
		}
		m.scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE test_calls_total counter\ntest_calls_total{kind=\"unary\"} %d\ntest_calls_total{kind=\"stream\"} 1\n", m.value.Load())
	}))
	t.Cleanup(srv.Close)
	m.addr = srv.Listener.Addr().String()
	return m
}

// One server for every claim: Prometheus discovers even static targets
// only some seconds after it starts.
func TestStart_ScrapesTheTargetsGiven_QueryReadsWhatTheLastScrapeSaw_WaitNamesATargetDown(t *testing.T) {
	a, b := startMetrics(t), startMetrics(t)
	a.value.Store(40)
	b.value.Store(2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	prom := promtest.Start(t, 200*time.Millisecond,
		promserver.Job{Name: "app", MetricsPath: "/custom/metrics", Targets: []promserver.Target{
			{Addr: a.addr, Labels: map[string]string{"replica": "a"}},
			{Addr: b.addr, Labels: map[string]string{"replica": "b"}},
		}},
		promserver.Job{Name: "gone", Targets: []promserver.Target{{Addr: dead}}})
	ctx := t.Context()
	at, err := prom.WaitScraped(ctx, "app", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v, err := prom.Query(ctx, `sum(test_calls_total{kind="unary"})`, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v.Sum() != 42 {
		t.Fatalf("sum over both targets = %+v, want one sample of 42", v)
	}
	v, err = prom.Query(ctx, `test_calls_total{kind="unary",replica="b",job="app"}`, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].Value != 2 || v[0].Metric["instance"] != b.addr {
		t.Fatalf("replica b's series = %+v, want 2 from instance %s", v, b.addr)
	}

	// A later value is seen once a scrape after it happened, and a query
	// at the earlier instant still reads the earlier one.
	a.value.Store(100)
	later, err := prom.WaitScraped(ctx, "app", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		at   time.Time
		want float64
	}{{at, 42}, {later, 102}} {
		v, err := prom.Query(ctx, `sum(test_calls_total{kind="unary"})`, q.at)
		if err != nil {
			t.Fatal(err)
		}
		if v.Sum() != q.want {
			t.Errorf("sum at %s = %v, want %v", q.at.Format(time.RFC3339Nano), v.Sum(), q.want)
		}
	}
	if a.scrapes.Load() == 0 || b.scrapes.Load() == 0 {
		t.Errorf("scrapes: a %d, b %d", a.scrapes.Load(), b.scrapes.Load())
	}
	ts, err := prom.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	up := 0
	for _, tg := range ts {
		if tg.Job == "app" && tg.Health == "up" {
			up++
		}
	}
	if len(ts) != 3 || up != 2 {
		t.Errorf("targets %+v, want three, both of app up", ts)
	}

	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = prom.WaitScraped(wctx, "gone", time.Now())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), dead) {
		t.Fatalf("WaitScraped on a target down = %v; want a deadline error naming %s", err, dead)
	}
}

func TestQuery_BadExpression_ErrorSaysWhy(t *testing.T) {
	prom := promtest.Start(t, 0)
	_, err := prom.Query(t.Context(), "sum(", time.Time{})
	if err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Fatalf("error %v, want Prometheus's bad_data", err)
	}
	v, err := prom.Query(t.Context(), "1 + 1", time.Time{})
	if err != nil || len(v) != 1 || v[0].Value != 2 {
		t.Fatalf("scalar 1 + 1 = %+v, %v", v, err)
	}
}

func TestStart_PortTaken_FailsSayingSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = promserver.Start(t.Context(), promserver.Options{Dir: t.TempDir(), Port: port})
	promtest.Check(t, skipMissingOnly(err))
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start on a taken port = %v; want the server's bind error", err)
	}
}

// skipMissingOnly passes on a missing prometheus (to skip) and nothing else.
func skipMissingOnly(err error) error {
	if errors.Is(err, promserver.ErrNotInstalled) {
		return err
	}
	return nil
}
