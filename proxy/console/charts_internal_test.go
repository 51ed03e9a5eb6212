package console

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/dashboards/queries"
)

func TestValueTicks_RoundStepsFromZeroCoveringTheMaximum(t *testing.T) {
	tests := []struct {
		hi   float64
		want []float64
	}{
		{hi: 840, want: []float64{0, 250, 500, 750, 1000}},
		{hi: 2100, want: []float64{0, 1000, 2000, 3000}},
		{hi: 1000, want: []float64{0, 250, 500, 750, 1000}},
		{hi: 0.3333, want: []float64{0, 0.1, 0.2, 0.3, 0.4}},
		{hi: 0.00167, want: []float64{0, 0.0005, 0.001, 0.0015, 0.002}},
		{hi: 3, want: []float64{0, 1, 2, 3}},
		{hi: 7, want: []float64{0, 2, 4, 6, 8}},
		{hi: 0, want: []float64{0, 0.25, 0.5, 0.75, 1}},
	}
	for _, tt := range tests {
		if got := valueTicks(tt.hi); !slices.Equal(got, tt.want) {
			t.Errorf("valueTicks(%v) = %v, want %v", tt.hi, got, tt.want)
		}
	}
}

func TestTickLabel_CarriesTheUnitWithTheStepsDecimals(t *testing.T) {
	tests := []struct {
		v, step float64
		unit    string
		want    string
	}{
		{v: 750, step: 250, unit: "ms", want: "750 ms"},
		{v: 2000, step: 1000, unit: "ms", want: "2 s"},
		{v: 2500, step: 2500, unit: "ms", want: "2.5 s"},
		{v: 0.3, step: 0.1, unit: "percentunit", want: "30%"},
		{v: 0.025, step: 0.025, unit: "percentunit", want: "2.5%"},
		{v: 0.0015, step: 0.0005, unit: "reqps", want: "0.0015"},
		{v: 2.5, step: 2.5, unit: "short", want: "2.5"},
		{v: 15000, step: 5000, unit: "short", want: "15k"},
		{v: 2500000, step: 2500000, unit: "short", want: "2.5M"},
		{v: 0, step: 250, unit: "ms", want: "0 ms"},
		{v: 0, step: 0.005, unit: "reqps", want: "0"},
	}
	for _, tt := range tests {
		if got := tickLabel(tt.v, tt.step, tt.unit); got != tt.want {
			t.Errorf("tickLabel(%v, %v, %q) = %q, want %q", tt.v, tt.step, tt.unit, got, tt.want)
		}
	}
}

func TestTimeTicks_RoundUTCTimesAtMostMax(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name         string
		from, to     string
		wide, narrow []string
	}{
		{name: "15m", from: "2026-12-06T02:16:15Z", to: "2026-12-06T02:31:15Z",
			wide:   []string{"02:18", "02:20", "02:22", "02:24", "02:26", "02:28", "02:30"},
			narrow: []string{"02:20", "02:25", "02:30"}},
		{name: "1h", from: "2026-12-06T01:32:00Z", to: "2026-12-06T02:32:00Z",
			wide:   []string{"01:40", "01:50", "02:00", "02:10", "02:20"},
			narrow: []string{"01:45", "02:00", "02:15"}},
		{name: "6h", from: "2026-12-05T20:35:00Z", to: "2026-12-06T02:35:00Z",
			wide:   []string{"22:00", "23:00", "Dec 6", "01:00", "02:00"},
			narrow: []string{"22:00", "Dec 6", "02:00"}},
		{name: "24h", from: "2026-12-05T02:45:00Z", to: "2026-12-06T02:45:00Z",
			wide:   []string{"06:00", "09:00", "12:00", "15:00", "18:00", "21:00", "Dec 6"},
			narrow: []string{"06:00", "12:00", "18:00", "Dec 6"}},
		{name: "7d", from: "2026-11-29T04:00:00Z", to: "2026-12-06T04:00:00Z",
			wide:   []string{"Nov 30", "Dec 1", "Dec 2", "Dec 3", "Dec 4", "Dec 5"},
			narrow: []string{"Dec 1", "Dec 3", "Dec 5"}},
		// An aligned hour's ends get no tick: their labels would stick
		// out of the plot.
		{name: "aligned 1h", from: "2026-12-06T01:00:00Z", to: "2026-12-06T02:00:00Z",
			wide:   []string{"01:10", "01:20", "01:30", "01:40", "01:50"},
			narrow: []string{"01:15", "01:30", "01:45"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := at(tt.from), at(tt.to)
			for _, set := range []struct {
				max  int
				want []string
			}{{maxTimeTicks, tt.wide}, {narrowTimeTicks, tt.narrow}} {
				var got []string
				for _, tick := range timeTicks(from, to, set.max) {
					if x := float64(tick.Sub(from)) / float64(to.Sub(from)); x < tickMargin/100.0 || x > 1-tickMargin/100.0 {
						t.Errorf("tick %v at %.0f%% of the axis, in its margins", tick, 100*x)
					}
					got = append(got, timeTickLabel(tick, to.Sub(from)))
				}
				if !slices.Equal(got, set.want) {
					t.Errorf("at most %d: ticks %v, want %v", set.max, got, set.want)
				}
			}
		})
	}
}

func TestParseDashRange(t *testing.T) {
	now := time.Date(2026, 12, 6, 2, 31, 17, 0, time.UTC)
	presets := []struct {
		q        string
		name     string
		from, to string
		bucket   time.Duration
	}{
		{q: "", name: "1h", from: "01:32:00", to: "02:32:00", bucket: time.Minute},
		{q: "range=15m", name: "15m", from: "02:16:30", to: "02:31:30", bucket: 15 * time.Second},
		{q: "range=6h", name: "6h", from: "20:35:00", to: "02:35:00", bucket: 5 * time.Minute},
		{q: "range=24h", name: "24h", from: "03:00:00", to: "03:00:00", bucket: time.Hour},
		{q: "range=7d", name: "7d", from: "04:00:00", to: "04:00:00", bucket: 2 * time.Hour},
		// The first URLs' values still work.
		{q: "range=hour", name: "1h", from: "01:32:00", to: "02:32:00", bucket: time.Minute},
		{q: "range=day", name: "24h", from: "03:00:00", to: "03:00:00", bucket: time.Hour},
	}
	for _, tt := range presets {
		t.Run(tt.q, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.q)
			r, err := parseDashRange(q, now)
			if err != nil {
				t.Fatal(err)
			}
			if r.Name != tt.name || r.Bucket != tt.bucket || r.From.Format("15:04:05") != tt.from || r.To.Format("15:04:05") != tt.to {
				t.Errorf("%s %v %s–%s, want %s %v %s–%s", r.Name, r.Bucket, r.From.Format("15:04:05"), r.To.Format("15:04:05"),
					tt.name, tt.bucket, tt.from, tt.to)
			}
			// Up to 6 hours, 60 to 100 points; beyond, whole hours (the
			// panels' rollup).
			if n := r.To.Sub(r.From) / r.Bucket; r.To.Sub(r.From) <= queries.RollupAfter && (n < 60 || n > 100) {
				t.Errorf("%d buckets", n)
			}
			if r.To.Sub(r.From) > queries.RollupAfter && (r.Bucket%time.Hour != 0 || r.From.Truncate(time.Hour) != r.From) {
				t.Errorf("over %v, buckets of %v from %v: not whole hours", queries.RollupAfter, r.Bucket, r.From)
			}
			if !r.To.After(now) || r.To.Sub(now) > r.Bucket {
				t.Errorf("to %v does not end with now's bucket", r.To)
			}
		})
	}

	t.Run("custom", func(t *testing.T) {
		for _, tt := range []struct {
			q        string
			from, to string
			bucket   time.Duration
		}{
			{q: "range=custom&from=2026-12-01T00:00&to=2026-12-02T00:00", from: "2026-12-01T00:00:00Z", to: "2026-12-02T00:00:00Z", bucket: time.Hour},
			// Over 6 hours, whole hours even where finer buckets would fit.
			{q: "range=custom&from=2026-12-01T00:10&to=2026-12-01T08:00", from: "2026-12-01T00:00:00Z", to: "2026-12-01T08:00:00Z", bucket: time.Hour},
			{q: "range=custom&from=2026-12-01T00:10&to=2026-12-01T06:10", from: "2026-12-01T00:10:00Z", to: "2026-12-01T06:10:00Z", bucket: 5 * time.Minute},
			// Without range= (the calls list's form), and in RFC 3339,
			// widened to whole buckets.
			{q: "from=2026-12-05T10:07:00Z&to=2026-12-05T11:02:40Z", from: "2026-12-05T10:07:00Z", to: "2026-12-05T11:03:00Z", bucket: 30 * time.Second},
			{q: "range=custom&from=2026-11-05T00:00&to=2026-12-06T00:00", from: "2026-11-05T00:00:00Z", to: "2026-12-06T00:00:00Z", bucket: 12 * time.Hour},
			{q: "range=custom&from=2026-12-05T10:00:00%2B02:00&to=2026-12-05T12:00:00%2B02:00", from: "2026-12-05T08:00:00Z", to: "2026-12-05T10:00:00Z", bucket: time.Minute},
		} {
			q, _ := url.ParseQuery(tt.q)
			r, err := parseDashRange(q, now)
			if err != nil {
				t.Errorf("%s: %v", tt.q, err)
				continue
			}
			if r.Name != "custom" || r.From.Format(time.RFC3339) != tt.from || r.To.Format(time.RFC3339) != tt.to || r.Bucket != tt.bucket {
				t.Errorf("%s: %s %s–%s by %v, want custom %s–%s by %v", tt.q, r.Name, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.Bucket, tt.from, tt.to, tt.bucket)
			}
			if n := r.To.Sub(r.From) / r.Bucket; n > maxBuckets {
				t.Errorf("%s: %d buckets", tt.q, n)
			}
		}
	})

	t.Run("refused, saying why", func(t *testing.T) {
		for _, tt := range []struct{ q, want string }{
			{q: "range=2h", want: `no range "2h"`},
			{q: "range=custom", want: "needs both a start (from) and an end (to)"},
			{q: "range=custom&from=2026-12-01T00:00", want: "needs both"},
			{q: "range=custom&from=yesterday&to=2026-12-02T00:00", want: `The from of the range, "yesterday", is not a date and time`},
			{q: "range=custom&from=2026-12-02T00:00&to=2026-12-01T00:00", want: "must start (from) before it ends (to)"},
			{q: "range=custom&from=2026-12-01T00:00&to=2026-12-01T00:00", want: "must start (from) before it ends (to)"},
			{q: "range=custom&from=2026-10-01T00:00&to=2026-12-01T00:00", want: "at most 31 days"},
			{q: "range=custom&from=2026-12-01T00:00:00&to=2026-12-01T00:00:30", want: "at least a minute"},
			{q: "range=custom&from=" + strings.Repeat("9", 5000) + "&to=2026-12-01T00:00", want: "is not a date and time"},
		} {
			q, _ := url.ParseQuery(tt.q)
			_, err := parseDashRange(q, now)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%.80s: %v, want an error saying %q", tt.q, err, tt.want)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("%.80s: a %d-byte error echoes the input whole", tt.q, len(err.Error()))
			}
		}
	})
}

func TestColumnLabel_SQLNamesForPeople(t *testing.T) {
	for col, want := range map[string]string{
		"input_tokens": "Input tokens", "output_tokens": "Output tokens", "failed_over": "Failed over",
		"last_seen": "Last seen", "duration_ms": "Duration (ms)", "trace_id": "Trace", "status": "HTTP status",
		"keys in use": "Keys in use", "model": "Model", "": "",
	} {
		if got := columnLabel(col); got != want {
			t.Errorf("columnLabel(%q) = %q, want %q", col, got, want)
		}
	}
}

// A latency with no calls in a bucket is unknown, not zero: the line
// breaks. A rate with no calls is zero: the line goes down to the axis.
func TestNewChart_GapsInLatenciesZerosInCounts(t *testing.T) {
	from := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	to := from.Add(10 * time.Minute)
	rows := [][]any{{from.Add(2 * time.Minute), 840.0}, {from.Add(3 * time.Minute), 900.0}, {from.Add(7 * time.Minute), 95.0}}

	lat := newChart([]string{"time", "p50"}, rows, from, to, time.Minute, "ms", "Latency")
	if len(lat.Series) != 1 {
		t.Fatalf("%d series", len(lat.Series))
	}
	s := lat.Series[0]
	// Buckets 2 and 3 joined; bucket 7 alone, a dot.
	if len(s.Segs) != 1 || len(s.Dots) != 1 {
		t.Errorf("latency: %d segments and %d dots, want 1 and 1: %+v", len(s.Segs), len(s.Dots), s)
	}
	if s.Segs[0].X1 != 25 || s.Segs[0].X2 != 35 || s.Dots[0].X != 75 {
		t.Errorf("points not at their buckets' middles: %+v", s)
	}
	if lat.Top != 1000 || lat.YTicks[len(lat.YTicks)-1].Y != plotTop || lat.YTicks[0].Y != plotBottom || lat.YTicks[0].Label != "0 ms" {
		t.Errorf("value axis: top %v, ticks %+v", lat.Top, lat.YTicks)
	}
	if len(lat.Columns) != 3 || lat.Columns[0].Values[0].Text != "p50: 840.0 ms" || lat.Columns[0].Time != "Dec 6 01:02–01:03 UTC" {
		t.Errorf("hover columns: %+v", lat.Columns)
	}

	rate := newChart([]string{"time", "requests/s"}, rows, from, to, time.Minute, "reqps", "Requests/s")
	if s := rate.Series[0]; len(s.Segs) != 9 || len(s.Dots) != 0 || s.Segs[0].Y1 != plotBottom {
		t.Errorf("rate: %d segments from y %v, want 9 from the axis (%v)", len(s.Segs), s.Segs[0].Y1, plotBottom)
	}
	if rate.Unit != "req/s" || len(rate.Columns) != 3 {
		t.Errorf("rate: unit %q, %d hover columns; want req/s and 3 (buckets with rows only)", rate.Unit, len(rate.Columns))
	}
}

func TestNewChart_MetricColumnSeriesAndCurrency(t *testing.T) {
	from := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	rows := [][]any{
		{from, "k1 gpt-4o (USD)", 0.5},
		{from.Add(time.Minute), "k2 gpt-4o (USD)", 0.25},
	}
	c := newChart([]string{"time", "metric", "spend"}, rows, from, to, time.Minute, "short", "Spend by key and model")
	if len(c.Series) != 2 || c.Series[1].Name != "k2 gpt-4o (USD)" || c.Unit != "USD" {
		t.Errorf("series %+v, unit %q", c.Series, c.Unit)
	}
	if got := c.Columns[0].Values[0].Text; got != "k1 gpt-4o (USD): 0.5" {
		t.Errorf("tooltip %q", got)
	}
	tok := newChart([]string{"time", "input", "output"}, [][]any{{from, int64(120), int64(48)}}, from, to, time.Minute, "short", "Tokens/s")
	if tok.Unit != "tokens/s" || tok.Columns[0].Values[1].Text != "output: 48 tokens/s" {
		t.Errorf("tokens: unit %q, tooltip %+v", tok.Unit, tok.Columns[0].Values)
	}
	var many [][]any
	for i := range maxSeries + 3 {
		many = append(many, []any{from, string(rune('a' + i)), float64(i + 1)})
	}
	m := newChart([]string{"time", "metric", "calls"}, many, from, to, time.Minute, "short", "Usage source")
	if len(m.Series) != maxSeries || m.Dropped != 3 || m.Series[0].Name != "d" {
		t.Errorf("%d series drawn, %d dropped, first %q; want the %d largest from d, 3 dropped", len(m.Series), m.Dropped, m.Series[0].Name, maxSeries)
	}
}
