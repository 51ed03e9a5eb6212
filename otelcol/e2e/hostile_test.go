package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
)

// poison is one request of issue 10 that stopped span export for every
// tenant: each used to leave a span the OTLP encoder or the collector
// refuses, and the proxy retried that batch forever.
type poison struct {
	name string
	send func(t *testing.T, g *gateway)
}

var poisons = []poison{
	{"POST /%FF with an announced oversized body", func(t *testing.T, g *gateway) {
		// fasthttp decodes %FF in the path to the byte 0xff; the answer
		// comes before any body is sent.
		status := rawStatus(t, strings.TrimPrefix(g.url, "http://"), "POST /%FF HTTP/1.1\r\nHost: x\r\n"+
			"Authorization: Bearer "+g.keys["acme"]+"\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
		if status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", status)
		}
	}},
	{"a 6 MiB model name", func(t *testing.T, g *gateway) {
		// Within max_body_bytes (16 MiB by default), so it is read, parsed
		// and refused as an unknown model, with the name on the record.
		status := g.post(t, "acme", `{"model":"`+strings.Repeat("m", 6<<20)+`","messages":[{"role":"user","content":"hi"}]}`)
		if status != http.StatusNotFound {
			t.Fatalf("status %d, want 404", status)
		}
	}},
	{"captured content with a huge role and name", func(t *testing.T, g *gateway) {
		status := g.post(t, "acme", `{"model":"`+models["acme"].public+`","messages":[{"role":"`+strings.Repeat("r", 1<<20)+
			`","name":"`+strings.Repeat("n", 1<<20)+`","content":"hi"},{"role":"user","content":"`+strings.Repeat("c", 1<<20)+`"}]}`)
		if status >= 500 {
			t.Fatalf("status %d", status)
		}
	}},
}

// post sends body as tenant's chat call and returns the status.
func (g *gateway) post(t *testing.T, tenant, body string) int {
	t.Helper()
	req, err := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+g.keys[tenant])
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// rawStatus writes raw on a fresh connection and returns the status of
// the answer.
func rawStatus(t *testing.T, addr, raw string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	var proto string
	var status int
	if _, err := fmt.Sscanf(line, "%s %d", &proto, &status); err != nil {
		t.Fatalf("status line %q: %v", line, err)
	}
	return status
}

// Issue 10, item 1, end to end: each poisoning request, then 1,000 normal
// calls; every call (the poisoning ones included) lands in Postgres, the
// instance's loom.seq has no gap, the proxy dropped nothing, and nothing
// went to dead letters.
func TestPipeline_PoisoningRequests_ThenThousandCalls_AllLand(t *testing.T) {
	pg := pgtest.Start(t)
	dbURL := pgtest.Database(t, pg)
	col := startCollector(t, dbURL)
	g := startGatewayOpts(t, col.grpc, gatewayOptions{captureAcme: 4 << 10})
	const each = 1000
	calls := plan(each * len(poisons))
	for i, p := range poisons {
		p.send(t, g)
		g.run(t, calls[i*each:(i+1)*each], 16, nil)
	}
	// A client abort is recorded once Loom has drained its upstream: wait
	// for every call's record before flushing.
	n := int64(len(calls) + len(poisons))
	for deadline := time.Now().Add(30 * time.Second); int64(g.tracer.Calls()) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the tracer numbered %d calls, want %d", g.tracer.Calls(), n)
		}
	}
	g.flush(60 * time.Second)
	db := connect(t, dbURL)
	instance := g.tracer.InstanceID()
	waitRows(t, db, n, 60*time.Second, `select count(*) from loom.spans where kind = 'server' and instance_id = $1`, instance)
	var distinct, lo, hi int64
	if err := db.QueryRow(context.Background(), `
		select count(distinct seq), min(seq), max(seq) from loom.spans where kind = 'server' and instance_id = $1`,
		instance).Scan(&distinct, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if distinct != n || lo != 1 || hi != n {
		t.Fatalf("loom.seq: %d distinct, %d..%d; want 1..%d with no gap", distinct, lo, hi, n)
	}
	ids := make([]string, len(calls))
	for i, p := range calls {
		ids[i] = p.traceID()
	}
	waitRows(t, db, int64(len(calls)), 60*time.Second,
		`select count(*) from loom.spans where kind = 'client' and instance_id = $1 and trace_id = any($2)`, instance, ids)
	var dead int64
	if err := db.QueryRow(context.Background(), `select count(*) from loom.dead_letters`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if s := g.tracer.Stats(); dead != 0 || s.Dropped != 0 {
		t.Fatalf("%d dead letters; proxy stats %+v", dead, s)
	}
	// The poisoning calls themselves are on record, as valid UTF-8 and capped.
	var route413, longModel int64
	if err := db.QueryRow(context.Background(), `
		select count(*) filter (where http_status = 413 and error_type = 'request_too_large'),
		       count(*) filter (where request_model like 'mmmm%' and length(request_model) <= 1024)
		from loom.spans where kind = 'server' and instance_id = $1`, instance).Scan(&route413, &longModel); err != nil {
		t.Fatal(err)
	}
	if route413 != 1 || longModel != 1 {
		t.Fatalf("poisoning calls on record: %d oversized-body rejects, %d capped model names; want 1 and 1", route413, longModel)
	}
}
