package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/anthropic"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// readmeDefaults reads the README's configuration table: each documented
// field with the default its second column names. A row may document
// several fields at once ("`timeouts.client_read`, `client_write` | `60s`,
// `60s`"): later names take the first one's prefix.
func readmeDefaults(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	tick := regexp.MustCompile("`([^`]*)`")
	_, table, ok := strings.Cut(string(b), "| field | default | meaning |\n")
	if !ok {
		t.Fatal("README.md has no configuration table (| field | default | meaning |)")
	}
	out := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "|") {
			break // the table's end
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		names, values := tick.FindAllStringSubmatch(cells[1], -1), tick.FindAllStringSubmatch(cells[2], -1)
		if len(values) < len(names) {
			continue // "none", "required": no default to pin
		}
		prefix := ""
		for i, n := range names {
			name := n[1]
			if i == 0 {
				if j := strings.LastIndexByte(name, '.'); j >= 0 {
					prefix = name[:j+1]
				}
			} else if !strings.Contains(name, ".") {
				name = prefix + name
			}
			out[name] = values[i][1]
		}
	}
	return out
}

// The defaults the README documents are the ones Parse applies: a default
// changed in code (or in the README) without the other fails here.
func TestReadme_DocumentedDefaults_AreTheAppliedOnes(t *testing.T) {
	t.Setenv("LOOM_TEST_STORE_URL", "postgres://127.0.0.1:1/loom")
	t.Setenv("LOOM_TEST_STORE_SECRET", strings.Repeat("ab", 32))
	c, err := config.Parse([]byte(`
deployments:
  - {name: o, provider: openai, base_url: "http://127.0.0.1:1/v1"}
  - {name: a, provider: azure_openai, base_url: "http://127.0.0.1:1", api_key: k}
store: {database_url_env: LOOM_TEST_STORE_URL, secret_key_env: LOOM_TEST_STORE_SECRET}
`))
	if err != nil {
		t.Fatal(err)
	}
	tm, tr := c.Timeouts, c.Tracing
	applied := map[string]any{
		"listen":                     c.Listen,
		"max_body_bytes":             c.MaxBodyBytes,
		"max_response_bytes":         c.MaxResponseBytes,
		"default_output_tokens":      c.DefaultOutputTokens,
		"connections.max_total":      c.Connections.MaxTotal,
		"connections.max_per_ip":     c.Connections.MaxPerIP,
		"timeouts.connect":           tm.Connect,
		"timeouts.first_byte":        tm.FirstByte,
		"timeouts.stream_idle":       tm.StreamIdle,
		"timeouts.idle_conn":         tm.IdleConn,
		"timeouts.drain":             tm.Drain,
		"timeouts.shutdown":          tm.Shutdown,
		"timeouts.pool_wait":         tm.PoolWait,
		"timeouts.client_read":       tm.ClientRead,
		"timeouts.client_write":      tm.ClientWrite,
		"timeouts.client_idle":       tm.ClientIdle,
		"timeouts.stream_write":      tm.StreamWrite,
		"routing.max_attempts":       c.Routing.MaxAttempts,
		"routing.budget":             c.Routing.Budget,
		"routing.circuit_failures":   c.Routing.CircuitFailures,
		"routing.circuit_cooldown":   c.Routing.CircuitCooldown,
		"routing.max_retry_after":    c.Routing.MaxRetryAfter,
		"deployments[].api_version":  c.Deployments[1].APIVersion,
		"deployments[].max_conns":    c.Deployments[0].MaxConns,
		"deployments[].tenant_share": c.Deployments[0].TenantShare,
		// 0 in the file means the translation's own default.
		"deployments[].default_max_tokens": anthropic.FallbackMaxTokens,
		"tenants[].content.max_bytes":      tenancy.DefaultContentMaxBytes,
		"tenants[].content.capture":        false,
		"store.poll":                       c.Store.Poll,
		"tracing.protocol":                 tr.Protocol,
		"tracing.queue_size":               tr.QueueSize,
		"tracing.batch_size":               tr.BatchSize,
		"tracing.batch_timeout":            tr.BatchTimeout,
		"tracing.export_timeout":           tr.ExportTimeout,
		"tracing.retry_max_elapsed":        tr.RetryMaxElapsed,
		"tracing.queue_bytes":              tr.QueueBytes,
		"tracing.batch_bytes":              tr.BatchBytes,
		"tracing.spool.max_bytes":          tr.Spool.MaxBytes,
		"tracing.spool.segment_bytes":      tr.Spool.SegmentBytes,
		"tracing.spool.commit_interval":    tr.Spool.CommitInterval,
		"tracing.spool.when_full":          tr.Spool.WhenFull,
		"ops.pprof":                        c.Ops.Pprof,
		// An entry's currency when it names none (the catalog applies it).
		"prices[].currency": price.DefaultCurrency,
	}
	documented := readmeDefaults(t)
	for field, got := range applied {
		doc, ok := documented[field]
		if !ok {
			t.Errorf("README documents no default for %s (applied: %v)", field, got)
			continue
		}
		if !sameDefault(t, doc, got) {
			t.Errorf("%s: README says %q, Parse applies %v", field, doc, got)
		}
	}
	// And the other way: a default the README documents must be pinned here.
	for field := range documented {
		if _, ok := applied[field]; !ok {
			t.Errorf("README documents a default for %s that this test does not check", field)
		}
	}
}

func sameDefault(t *testing.T, doc string, got any) bool {
	t.Helper()
	doc = strings.Fields(doc + " ")[0] // "16777216 (16 MiB)" is in two cells' worth of backticks
	switch g := got.(type) {
	case time.Duration:
		d, err := time.ParseDuration(doc)
		return err == nil && d == g
	case int:
		return doc == strconv.Itoa(g)
	case int64:
		return doc == strconv.FormatInt(g, 10)
	case float64:
		f, err := strconv.ParseFloat(doc, 64)
		return err == nil && f == g
	case bool:
		return doc == strconv.FormatBool(g)
	case string:
		return doc == g
	}
	t.Fatalf("no comparison for %T", got)
	return false
}
