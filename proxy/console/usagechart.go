package console

// The Usage page's charts: server-side SVG line charts over the page's
// buckets, with a time axis (UTC), a value axis with its unit, gridlines,
// and a hover column per bucket whose <title> gives every series' value
// there as the page's table writes it (exact for money). Kept apart from
// the dashboards' charts on purpose (see the Usage part of issue 16); the
// CSP allows this: SVG presentation attributes, no inline style.

import (
	"html/template"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// usageChart is one chart ready for the template.
type usageChart struct {
	ID     string // spend or tokens
	Title  string
	SVG    template.HTML
	Legend []usageKey
}

// usageKey is one series in a chart's legend.
type usageKey struct{ Name, Class string }

// usageSeries is one line: a value per bucket for drawing, and its text
// for people ("" where there is nothing to say).
type usageSeries struct {
	Name   string
	Values []float64
	Text   []string
}

// usageCharts draws spend (a line per currency) and tokens (a line per
// kind reported) over every bucket of u's range; buckets without calls
// are zero.
func usageCharts(u usageQuery, buckets map[time.Time]*usageSums) (spend, tokens usageChart) {
	times := u.buckets()
	currencies := map[string]bool{}
	for _, b := range buckets {
		for c := range b.Cost {
			currencies[c] = true
		}
	}
	var curs []string
	for c := range currencies {
		curs = append(curs, c)
	}
	sort.Strings(curs)

	var money []usageSeries
	for _, c := range curs {
		s := usageSeries{Name: c, Values: make([]float64, len(times)), Text: make([]string, len(times))}
		for i, t := range times {
			s.Text[i] = "no priced calls"
			if b := buckets[t]; b != nil {
				if v, ok := b.Cost[c]; ok {
					// The float only places the point; the text is exact.
					s.Values[i], _ = strconv.ParseFloat(v, 64)
					s.Text[i] = usageMoney(v, c)
				}
			}
		}
		money = append(money, s)
	}
	unit := strings.Join(curs, ", ")
	if unit == "" {
		unit = "no priced calls"
	}
	spend = drawUsageChart("Spend", unit, times, u.step(), money, true)

	kinds := []struct {
		name string
		of   func(*usageSums) *int64
	}{
		{"input", func(s *usageSums) *int64 { return s.Input }},
		{"output", func(s *usageSums) *int64 { return s.Output }},
		{"cached input", func(s *usageSums) *int64 { return s.Cached }},
		{"reasoning", func(s *usageSums) *int64 { return s.Reasoning }},
	}
	var toks []usageSeries
	for _, k := range kinds {
		s := usageSeries{Name: k.name, Values: make([]float64, len(times)), Text: make([]string, len(times))}
		seen := false
		for i, t := range times {
			s.Text[i] = "0 tokens"
			if b := buckets[t]; b != nil {
				if v := k.of(b); v != nil {
					seen = true
					s.Values[i] = float64(*v)
					s.Text[i] = groupDigits(strconv.FormatInt(*v, 10)) + " tokens"
				}
			}
		}
		// A kind no call reported (reasoning, often) is left out rather
		// than drawn as a line of zeros.
		if seen {
			toks = append(toks, s)
		}
	}
	tokens = drawUsageChart("Tokens", "tokens", times, u.step(), toks, false)
	return spend, tokens
}

// The chart's geometry, in viewBox units.
const (
	usageChartW, usageChartH        = 800.0, 260.0
	usageChartLeft, usageChartRight = 78.0, 16.0
	usageChartTop, usageChartBottom = 26.0, 44.0
	usageMaxTimeLabels              = 8
	usageMaxDots                    = 62
)

func drawUsageChart(title, unit string, times []time.Time, step time.Duration, series []usageSeries, money bool) usageChart {
	c := usageChart{ID: strings.ToLower(title), Title: title}
	for i, s := range series {
		c.Legend = append(c.Legend, usageKey{Name: s.Name, Class: usageSeriesClass(i)})
	}
	pw, ph := usageChartW-usageChartLeft-usageChartRight, usageChartH-usageChartTop-usageChartBottom
	maxV := 0.0
	for _, s := range series {
		for _, v := range s.Values {
			maxV = math.Max(maxV, v)
		}
	}
	tickStep, top, dec := usageNiceScale(maxV)
	n := len(times)
	bw := pw / float64(max(n, 1))
	x := func(i int) float64 { return usageChartLeft + (float64(i)+0.5)*bw }
	y := func(v float64) float64 { return usageChartTop + ph - v/top*ph }

	var b strings.Builder
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	esc := template.HTMLEscapeString
	b.WriteString(`<svg class="usage-svg" viewBox="0 0 ` + f(usageChartW) + ` ` + f(usageChartH) + `" role="img" aria-label="` + esc(title+" over time, in "+unit) + `">`)
	// The value axis: gridlines, tick labels, the unit above.
	b.WriteString(`<g class="usage-yaxis">`)
	for k := 0; k <= int(math.Round(top/tickStep)); k++ {
		v := float64(k) * tickStep
		yy := f(y(v))
		b.WriteString(`<line class="usage-grid" x1="` + f(usageChartLeft) + `" x2="` + f(usageChartW-usageChartRight) + `" y1="` + yy + `" y2="` + yy + `"/>`)
		b.WriteString(`<text x="` + f(usageChartLeft-6) + `" y="` + yy + `" dy="5" text-anchor="end">` + esc(usageAxisLabel(v, dec, money)) + `</text>`)
	}
	b.WriteString(`<text class="usage-unit" x="` + f(usageChartLeft-6) + `" y="14" text-anchor="end">` + esc(unit) + `</text>`)
	b.WriteString(`</g>`)
	// The time axis: a tick and a label every few buckets.
	b.WriteString(`<g class="usage-xaxis">`)
	b.WriteString(`<line class="usage-axis" x1="` + f(usageChartLeft) + `" x2="` + f(usageChartW-usageChartRight) + `" y1="` + f(usageChartTop+ph) + `" y2="` + f(usageChartTop+ph) + `"/>`)
	every := usageLabelEvery(n, step)
	lastDay := ""
	for i, t := range times {
		if !usageLabelled(i, t, every, step) {
			continue
		}
		xx := f(x(i))
		b.WriteString(`<line class="usage-tick" x1="` + xx + `" x2="` + xx + `" y1="` + f(usageChartTop+ph) + `" y2="` + f(usageChartTop+ph+4) + `"/>`)
		b.WriteString(`<text x="` + xx + `" y="` + f(usageChartTop+ph+18) + `" text-anchor="middle">`)
		day := t.Format("Jan 02")
		// Hours apart: the clock, and the date where it changes; whole
		// days apart (7 days of hours, any days): the date alone.
		if step < 24*time.Hour && every < 24 {
			b.WriteString(t.Format("15:04"))
			if day != lastDay {
				b.WriteString(`<tspan x="` + xx + `" dy="15">` + day + `</tspan>`)
			}
		} else {
			b.WriteString(day)
		}
		lastDay = day
		b.WriteString(`</text>`)
	}
	// Above the plot, at the right: below it, the last tick's date would
	// run into it.
	b.WriteString(`<text class="usage-unit" x="` + f(usageChartW-usageChartRight) + `" y="14" text-anchor="end">time (UTC)</text>`)
	b.WriteString(`</g>`)
	// The lines.
	for k, s := range series {
		cls := usageSeriesClass(k)
		b.WriteString(`<polyline class="usage-line ` + cls + `" points="`)
		for i, v := range s.Values {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(f(x(i)) + "," + f(y(v)))
		}
		b.WriteString(`"/>`)
		if n <= usageMaxDots {
			for i, v := range s.Values {
				b.WriteString(`<circle class="usage-dot ` + cls + `" cx="` + f(x(i)) + `" cy="` + f(y(v)) + `" r="2.5"/>`)
			}
		}
	}
	// Hover columns, one per bucket, on top: a browser shows the title.
	if len(series) > 0 {
		for i, t := range times {
			var tip strings.Builder
			tip.WriteString(usageBucketLabel(t, step))
			for _, s := range series {
				tip.WriteString("\n" + s.Name + ": " + s.Text[i])
			}
			b.WriteString(`<rect class="usage-hover" data-bucket="` + t.Format(time.RFC3339) + `" x="` + f(usageChartLeft+float64(i)*bw) +
				`" y="` + f(usageChartTop) + `" width="` + f(bw) + `" height="` + f(ph) + `"><title>` + esc(tip.String()) + `</title></rect>`)
		}
	} else {
		b.WriteString(`<text class="usage-empty" x="` + f(usageChartLeft+pw/2) + `" y="` + f(usageChartTop+ph/2) + `" text-anchor="middle">no data in this range</text>`)
	}
	b.WriteString(`</svg>`)
	// Every piece of text above went through esc or is a fixed format.
	c.SVG = template.HTML(b.String())
	return c
}

func usageSeriesClass(i int) string { return "usage-s" + strconv.Itoa(i%6) }

// usageAxisLabel writes a tick's value: money with dec decimals and thousands
// separators; tokens compactly (1.5k, 2M).
func usageAxisLabel(v float64, dec int, money bool) string {
	if money {
		return groupDigits(strconv.FormatFloat(v, 'f', dec, 64))
	}
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div {
			return strconv.FormatFloat(math.Round(v/u.div*1000)/1000, 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// usageLabelEvery is how many buckets apart the time labels are: a clock-like
// step (1, 2, 3, 6, 12 hours or whole days; 1, 2, 7, 14 days) leaving at
// most usageMaxTimeLabels labels.
func usageLabelEvery(n int, step time.Duration) int {
	choices := []int{1, 2, 3, 6, 12, 24, 48, 72, 168, 336}
	if step >= 24*time.Hour {
		choices = []int{1, 2, 7, 14, 28}
	}
	for _, c := range choices {
		if (n+c-1)/c <= usageMaxTimeLabels {
			return c
		}
	}
	return (n + usageMaxTimeLabels - 1) / usageMaxTimeLabels
}

// usageLabelled reports whether bucket i (starting at t) gets a time label:
// hours on the clock's multiples of the step (midnight for days), days
// every so many from the first.
func usageLabelled(i int, t time.Time, every int, step time.Duration) bool {
	if step < 24*time.Hour {
		hours := t.Unix() / 3600
		return hours%int64(every) == 0
	}
	return i%every == 0
}

func usageBucketLabel(t time.Time, step time.Duration) string {
	if step >= 24*time.Hour {
		return t.Format("2006-01-02") + " (UTC day)"
	}
	return t.Format("2006-01-02 15:04") + " UTC (hour)"
}

// usageNiceScale picks a tick step of 1, 2, 2.5 or 5 times a power of ten
// giving about four intervals, the axis top (a whole number of steps at
// or above maxV), and the decimal places a tick label needs. An empty
// chart gets 0 to 1.
func usageNiceScale(maxV float64) (step, top float64, dec int) {
	if maxV <= 0 || math.IsNaN(maxV) || math.IsInf(maxV, 0) {
		return 0.25, 1, 2
	}
	step = niceStep(maxV / 4)
	return step, math.Ceil(maxV/step-1e-9) * step, decimals(step)
}
