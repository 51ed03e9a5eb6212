package console

import (
	"math"
	"net/url"
	"testing"
	"time"
)

func TestUsageDigitsAndMoney_KeepEveryDigit(t *testing.T) {
	for _, c := range []struct{ in, digits, money string }{
		{"0", "0", "0.00 USD"},
		{"0.3", "0.3", "0.30 USD"},
		{"123", "123", "123.00 USD"},
		{"1234", "1,234", "1,234.00 USD"},
		{"12345.6", "12,345.6", "12,345.60 USD"},
		{"0.000171", "0.000171", "0.000171 USD"},
		{"1234.800171000", "1,234.800171000", "1,234.800171 USD"},
		{"1000000", "1,000,000", "1,000,000.00 USD"},
		{"-1234567.5", "-1,234,567.5", "-1,234,567.50 USD"},
	} {
		if got := groupDigits(c.in); got != c.digits {
			t.Errorf("groupDigits(%q) = %q, want %q", c.in, got, c.digits)
		}
		if got := usageMoney(c.in, "USD"); got != c.money {
			t.Errorf("usageMoney(%q) = %q, want %q", c.in, got, c.money)
		}
	}
}

func TestUsageCSVSafe_NeutralisesFormulaStarts(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+cmd": "'+cmd", "-2": "'-2", "@SUM(A1)": "'@SUM(A1)", "\t=x": "'\t=x", "\r=x": "'\r=x",
		"gpt-4o": "gpt-4o", "": "", "key 1": "key 1",
	} {
		if got := csvText(in); got != want {
			t.Errorf("csvText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUsageNiceScale_StepsOfOneTwoTwoAndAHalfFive(t *testing.T) {
	for _, c := range []struct {
		max, step, top float64
		dec            int
	}{
		{0, 0.25, 1, 2},
		{7, 2, 8, 0},
		{10, 2.5, 10, 1},
		{1234.5, 500, 1500, 0},
		{0.3, 0.1, 0.3, 1},
		{0.000171, 0.00005, 0.0002, 5},
		{2_000_000, 500_000, 2_000_000, 0},
	} {
		step, top, dec := usageNiceScale(c.max)
		if math.Abs(step-c.step) > c.step*1e-9 || math.Abs(top-c.top) > c.top*1e-9 || dec != c.dec {
			t.Errorf("usageNiceScale(%v) = %v, %v, %d; want %v, %v, %d", c.max, step, top, dec, c.step, c.top, c.dec)
		}
	}
}

func TestUsageLabelEvery_AtMostEightLabels(t *testing.T) {
	for _, c := range []struct {
		n    int
		step time.Duration
		want int
	}{
		{25, time.Hour, 6}, {168, time.Hour, 24}, {744, time.Hour, 168}, {8, 24 * time.Hour, 1}, {31, 24 * time.Hour, 7}, {93, 24 * time.Hour, 14},
	} {
		if got := usageLabelEvery(c.n, c.step); got != c.want {
			t.Errorf("usageLabelEvery(%d, %v) = %d, want %d", c.n, c.step, got, c.want)
		}
	}
}

func TestParseUsageQuery_Defaults(t *testing.T) {
	now := time.Date(2026, 12, 6, 3, 0, 30, 0, time.UTC)
	admin, tenant := session{admin: true}, session{tenant: "acme", key: "k"}
	for _, c := range []struct {
		name                string
		s                   session
		q                   url.Values
		group, gran, tenant string
		span                time.Duration
	}{
		{"admin", admin, url.Values{}, "tenant", "hour", "", 24 * time.Hour},
		{"tenant session", tenant, url.Values{"tenant": {"globex"}}, "key", "hour", "", 24 * time.Hour},
		{"7 days", tenant, url.Values{"range": {"7d"}}, "key", "hour", "", 7 * 24 * time.Hour},
		{"30 days", admin, url.Values{"range": {"30d"}, "tenant": {"acme"}}, "tenant", "day", "acme", 30 * 24 * time.Hour},
		{"custom", admin, url.Values{"from": {"2026-12-01T00:00"}, "to": {"2026-12-02T12:00"}}, "tenant", "hour", "", 36 * time.Hour},
	} {
		u, err := parseUsageQuery(c.q, c.s, now)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if u.Group != c.group || u.Gran != c.gran || u.Tenant != c.tenant || u.To.Sub(u.From) != c.span {
			t.Errorf("%s: %+v", c.name, u)
		}
	}
}
