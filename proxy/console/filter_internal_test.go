package console

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseCallFilter_RoundTripsThroughItsLinks(t *testing.T) {
	admin := session{admin: true}
	in := url.Values{
		"tenant": {"acme"}, "key": {"k1"}, "model": {"gpt-4o"}, "provider": {"openai"}, "error_type": {"timeout"},
		"status": {"5xx"}, "stream": {"true"}, "min_ms": {"250.5"}, "from": {"2026-12-01T10:00"}, "to": {"2026-12-02T10:00:00Z"},
		"after": {"ignored-cursor"},
	}
	f, err := parseCallFilter(in, admin)
	if err != nil {
		t.Fatal(err)
	}
	again, err := parseCallFilter(f.values(), admin)
	if err != nil {
		t.Fatal(err)
	}
	if again != f {
		t.Fatalf("through values(): %+v, want %+v", again, f)
	}
	if f.From != time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) {
		t.Fatalf("a datetime-local value is UTC: %v", f.From)
	}
	var args []any
	sql := f.where(time.Now(), func(v any) string { args = append(args, v); return "?" })
	for _, want := range []string{"s.tenant_id", "s.api_key_id", "request_model", "provider", "error_type", "http_status >= 500", "stream", "duration_ms", "s.start_time >=", "s.start_time <"} {
		if !strings.Contains(sql, want) {
			t.Errorf("conditions %q lack %q", sql, want)
		}
	}
	if len(args) != 9 {
		t.Errorf("%d values bound, want 9: %v", len(args), args)
	}
}

func TestParseCallFilter_TenantSessionCannotNameATenant(t *testing.T) {
	f, err := parseCallFilter(url.Values{"tenant": {"globex"}}, session{tenant: "acme"})
	if err != nil || f.Tenant != "" {
		t.Fatalf("tenant session's filter %+v, %v: the tenant parameter must be ignored", f, err)
	}
}

func TestParseCallFilter_ValuesItCannotApplyAreErrorsInWords(t *testing.T) {
	for _, q := range []url.Values{
		{"status": {"weird"}}, {"stream": {"yes"}}, {"min_ms": {"-1"}}, {"min_ms": {"abc"}}, {"range": {"3y"}},
		{"from": {"yesterday"}}, {"from": {"2026-12-02T00:00"}, "to": {"2026-12-01T00:00"}},
		{"model": {strings.Repeat("m", maxFilterLen+1)}},
	} {
		if _, err := parseCallFilter(q, session{admin: true}); !errors.Is(err, errBadFilter) {
			t.Errorf("%v: %v, want errBadFilter", q, err)
		}
	}
}

func TestCallFilter_NamedRangeBoundsFromNow(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	f, err := parseCallFilter(url.Values{"range": {"6h"}, "from": {"2020-01-01T00:00"}}, session{})
	if err != nil {
		t.Fatal(err)
	}
	from, to := f.bounds(now)
	if !from.Equal(now.Add(-6*time.Hour)) || !to.IsZero() {
		t.Fatalf("bounds %v..%v", from, to)
	}
}
