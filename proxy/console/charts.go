package console

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A time series panel is drawn here, on the server, as two SVGs side by
// side: the value axis, a fixed axisW pixels wide, and the plot, as wide as
// its panel. The plot has no viewBox: x is in percent of its width (SVG
// takes percentages in x, x1, cx, width) and y in pixels, so it stretches
// to any width without stretching its text. Lines are <line> segments
// (a polyline takes no percentages). Each bucket with data has a hover
// column that reveals its time and every series' value (CSS :hover, no
// script), and a checkbox per series before the plot hides it (CSS :checked),
// so the page needs no JavaScript to be read.

// Geometry of the plot, in pixels.
const (
	plotTop    = 10.0  // room for the top tick label
	plotH      = 150.0 // the value range
	plotBottom = plotTop + plotH
	chartH     = 182.0 // the SVGs' height: plot and time labels
	timeLabelY = 176.0
	// maxSeries is what a chart draws (and what the stylesheet's legend
	// toggles cover); the rest are named as left out, not silently lost.
	maxSeries = 12
	// maxTipLines bounds a tooltip to what fits in the plot's height.
	maxTipLines = 8
	// The time axis has a set of ticks for a panel of a desktop's third
	// and one for a phone; the stylesheet shows the one that fits (a
	// container query on .plot).
	maxTimeTicks    = 7
	narrowTimeTicks = 4
	// tickMargin is the percentage of the time axis at each end that has
	// no tick: half a label's width on a phone.
	tickMargin = 7
)

// chart is a time series panel laid out for the template, which only
// writes these numbers into attributes.
type chart struct {
	// Unit captions the value axis where its tick labels carry none
	// ("req/s", "tokens/s", "USD"); "" for ms and percentages.
	Unit   string
	Top    float64 // the value axis' top, in the panel's unit
	YTicks []yTick
	XTicks []xTick
	// XTicksNarrow are fewer, for a narrow plot.
	XTicksNarrow []xTick
	Series       []seriesView
	Columns      []hoverColumn
	// Dropped counts series beyond maxSeries that are not drawn.
	Dropped int
	// Empty is a range without a single row.
	Empty bool
}

type yTick struct {
	Y     float64
	Label string
}

// xTick is a time axis tick, its label centred on it (timeTicks keeps
// ticks off the plot's ends).
type xTick struct {
	X     float64 // percent of the plot's width
	Label string
}

type seriesView struct {
	Name  string
	ID    int    // its index: class sN, toggled by its legend entry
	Color string // c0…c7
	Segs  []segment
	// Dots are points with no neighbour to draw a line to.
	Dots []dot
}

type segment struct{ X1, Y1, X2, Y2 float64 }

type dot struct{ X, Y float64 }

// hoverColumn is one bucket: the area that reacts to the pointer and what
// it reveals.
type hoverColumn struct {
	X, W, Mid float64 // percent
	Anchor    string  // the tooltip's text-anchor, so it stays inside
	DX        float64 // the tooltip's offset from Mid, in pixels
	Time      string
	Values    []hoverValue
	More      int // values past maxTipLines
}

type hoverValue struct {
	ID    int
	Color string
	Y     float64
	Text  string
}

// chartSeries is one series' values by bucket index.
type chartSeries struct {
	name string
	vals []float64
	has  []bool // a row gave this bucket a value
	sum  float64
}

var currencyRe = regexp.MustCompile(`(?:^|\()([A-Z]{3})\)?$`)

// newChart lays out a time series panel's rows over the window [from, to),
// cut into buckets of iv. The first column is the bucket's time; each other
// numeric column is a series, or, when a "metric" column is there (the long
// tables Grafana reads), each of its values is.
//
// A bucket without a row is a gap in a latency or a ratio (nothing was
// measured) but zero in a count, rate or sum (nothing happened): units ms
// and percentunit keep gaps, the others are drawn at zero there. Only
// buckets with a row get a hover column.
func newChart(cols []string, data [][]any, from, to time.Time, iv time.Duration, unit, title string) *chart {
	n := int(to.Sub(from) / iv)
	if n < 1 {
		n = 1
	}
	metric := slices.Index(cols, "metric")
	var series []*chartSeries
	byName := map[string]*chartSeries{}
	var valueCols []string
	for i := 1; i < len(cols); i++ {
		if i != metric {
			valueCols = append(valueCols, cols[i])
		}
	}
	rowAt := make([]bool, n)
	for _, vals := range data {
		at, ok := vals[0].(time.Time)
		if !ok || at.Before(from) || !at.Before(to) {
			continue
		}
		b := int(at.Sub(from) / iv)
		for i := 1; i < len(cols); i++ {
			if i == metric {
				continue
			}
			v, ok := number(vals[i])
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			name := cols[i]
			if metric > 0 {
				name = fmt.Sprint(vals[metric])
				if len(valueCols) > 1 {
					name += " " + cols[i]
				}
			}
			s := byName[name]
			if s == nil {
				s = &chartSeries{name: name, vals: make([]float64, n), has: make([]bool, n)}
				byName[name] = s
				series = append(series, s)
			}
			s.vals[b] += v
			s.has[b] = true
			s.sum += math.Abs(v)
			rowAt[b] = true
		}
	}
	c := &chart{Empty: len(series) == 0, Unit: unitCaption(unit, title, valueCols, series)}
	if len(series) > maxSeries {
		// Keep the largest; their first-seen order stays.
		bySum := slices.Clone(series)
		slices.SortStableFunc(bySum, func(a, b *chartSeries) int { return -cmpFloat(a.sum, b.sum) })
		keep := map[*chartSeries]bool{}
		for _, s := range bySum[:maxSeries] {
			keep[s] = true
		}
		c.Dropped = len(series) - maxSeries
		series = slices.DeleteFunc(series, func(s *chartSeries) bool { return !keep[s] })
	}
	gaps := unit == "ms" || unit == "percentunit"
	hi := 0.0
	for _, s := range series {
		for b, v := range s.vals {
			if s.has[b] {
				hi = max(hi, v)
			}
		}
	}
	ticks := valueTicks(hi)
	c.Top = ticks[len(ticks)-1]
	step := ticks[1] - ticks[0]
	for _, t := range ticks {
		c.YTicks = append(c.YTicks, yTick{Y: yOf(t, c.Top), Label: tickLabel(t, step, unit)})
	}
	c.XTicks = xTicks(from, to, maxTimeTicks)
	c.XTicksNarrow = xTicks(from, to, narrowTimeTicks)
	mid := func(b int) float64 { return pct((float64(b) + 0.5) / float64(n)) }
	present := func(s *chartSeries, b int) bool { return b >= 0 && b < n && (s.has[b] || !gaps) }
	for k, s := range series {
		sv := seriesView{Name: s.name, ID: k, Color: "c" + strconv.Itoa(k%8)}
		for b := 0; b < n; b++ {
			if !present(s, b) {
				continue
			}
			if present(s, b+1) {
				sv.Segs = append(sv.Segs, segment{X1: mid(b), Y1: yOf(s.vals[b], c.Top), X2: mid(b + 1), Y2: yOf(s.vals[b+1], c.Top)})
			} else if !present(s, b-1) {
				sv.Dots = append(sv.Dots, dot{X: mid(b), Y: yOf(s.vals[b], c.Top)})
			}
		}
		c.Series = append(c.Series, sv)
	}
	for b := 0; b < n; b++ {
		if !rowAt[b] {
			continue
		}
		at := from.Add(time.Duration(b) * iv)
		// The tooltip runs right of the point on the left, left of it on
		// the right, and centred in the middle, so that it fits a phone's
		// plot (about 280 pixels) at any point.
		hc := hoverColumn{X: pct(float64(b) / float64(n)), W: pct(1 / float64(n)), Mid: mid(b),
			Anchor: "middle", Time: bucketLabel(at, iv)}
		switch {
		case hc.Mid < 35:
			hc.Anchor, hc.DX = "start", 8
		case hc.Mid > 65:
			hc.Anchor, hc.DX = "end", -8
		}
		for k, s := range series {
			if !s.has[b] && gaps {
				continue
			}
			if len(hc.Values) == maxTipLines {
				hc.More++
				continue
			}
			hc.Values = append(hc.Values, hoverValue{ID: k, Color: "c" + strconv.Itoa(k%8), Y: yOf(s.vals[b], c.Top),
				Text: s.name + ": " + seriesValue(s.vals[b], unit, c.Unit, s.name)})
		}
		c.Columns = append(c.Columns, hc)
	}
	return c
}

// xTicks places at most max time ticks on the plot.
func xTicks(from, to time.Time, max int) []xTick {
	var out []xTick
	for _, t := range timeTicks(from, to, max) {
		out = append(out, xTick{X: pct(float64(t.Sub(from)) / float64(to.Sub(from))), Label: timeTickLabel(t, to.Sub(from))})
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pct writes a fraction as a percentage with two decimals: enough for a
// pixel on any screen, short in the page.
func pct(f float64) float64 { return math.Round(f*10000) / 100 }

func yOf(v, top float64) float64 {
	if top <= 0 {
		return plotBottom
	}
	return round1(plotTop + plotH*(1-v/top))
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// seriesValue writes a value for a tooltip: in the panel's Grafana unit,
// and, for a plain number, the axis caption unless the series' name says it.
func seriesValue(v float64, unit, caption, name string) string {
	s := formatFloat(v, unit)
	switch unit {
	case "ms", "percentunit", "reqps":
		return s
	}
	if caption != "" && !strings.Contains(name, caption) {
		s += " " + caption
	}
	return s
}

// unitCaption names what a plain ("short") panel counts, from the SQL's own
// names, so a panel added to dashboards/queries gets one too: a spend's
// currency (its metric, or a metric ending "(USD)"), a single value
// column's name ("chunks/s", "disconnects"), a shared per-minute suffix, or
// else the panel's title ("Tokens/s"). Grafana units speak for themselves.
func unitCaption(unit, title string, valueCols []string, series []*chartSeries) string {
	switch unit {
	case "ms", "percentunit":
		return ""
	case "reqps":
		return "req/s"
	}
	if slices.Contains(valueCols, "spend") {
		cur := ""
		for _, s := range series {
			m := currencyRe.FindStringSubmatch(s.name)
			if m == nil || (cur != "" && m[1] != cur) {
				return "mixed currencies"
			}
			cur = m[1]
		}
		return cur
	}
	if len(valueCols) == 1 {
		return valueCols[0]
	}
	perMin := len(valueCols) > 0
	for _, c := range valueCols {
		perMin = perMin && strings.HasSuffix(c, "/min")
	}
	if perMin {
		return "/min"
	}
	return strings.ToLower(title)
}

// valueTicks are the value axis' ticks from zero to a round value at or
// above hi, four or five of them, at a step of 1, 2, 2.5 or 5 times a power
// of ten. A chart with nothing above zero gets 0 to 1.
func valueTicks(hi float64) []float64 {
	if !(hi > 0) || math.IsInf(hi, 0) {
		hi = 1
	}
	step := niceStep(hi / 4)
	n := int(math.Ceil(hi/step - 1e-9))
	ticks := make([]float64, n+1)
	for i := range ticks {
		// Multiplied, not summed: 0.1+0.1+0.1 is not 0.3.
		ticks[i] = roundTo(float64(i)*step, step)
	}
	return ticks
}

// niceStep is the smallest of 1, 2, 2.5, 5 and 10 times a power of ten at
// or above raw.
func niceStep(raw float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw*(1-1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// decimals is how many decimals tell the multiples of step apart.
func decimals(step float64) int {
	d := 0
	for d < 12 && math.Abs(step*math.Pow(10, float64(d))-math.Round(step*math.Pow(10, float64(d)))) > 1e-6*step*math.Pow(10, float64(d)) {
		d++
	}
	return d
}

func roundTo(v, step float64) float64 {
	p := math.Pow(10, float64(decimals(step)))
	return math.Round(v*p) / p
}

// tickLabel writes a value axis tick: milliseconds (seconds from a step of
// a second), percentages, or a plain number shortened with k and M.
func tickLabel(v, step float64, unit string) string {
	f := func(v, step float64) string {
		if v == 0 {
			return "0"
		}
		return strconv.FormatFloat(v, 'f', decimals(step), 64)
	}
	switch unit {
	case "ms":
		if step >= 1000 {
			return f(v/1000, step/1000) + " s"
		}
		return f(v, step) + " ms"
	case "percentunit":
		return f(v*100, step*100) + "%"
	}
	switch {
	case step >= 1e6:
		return f(v/1e6, step/1e6) + "M"
	case step >= 1e3:
		return f(v/1e3, step/1e3) + "k"
	}
	return f(v, step)
}

// timeSteps are the time axis' possible tick intervals; each divides the
// next one's multiples of a day, so ticks fall on round UTC times.
var timeSteps = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 2 * 24 * time.Hour,
	7 * 24 * time.Hour,
}

// timeTicks are round UTC times (whole steps since midnight; weeks from a
// Monday) at the smallest step of timeSteps that gives at most max of them
// in [from, to] less tickMargin of it at each end, where a label centred on
// its tick would stick out of the plot or run into its neighbour.
func timeTicks(from, to time.Time, max int) []time.Time {
	margin := to.Sub(from) * tickMargin / 100
	from, to = from.Add(margin), to.Add(-margin)
	var out []time.Time
	for _, step := range timeSteps {
		out = out[:0]
		// Truncate counts from the zero Time, a UTC midnight and a Monday.
		t := from.UTC().Truncate(step)
		if t.Before(from) {
			t = t.Add(step)
		}
		for ; !t.After(to) && len(out) <= max; t = t.Add(step) {
			out = append(out, t)
		}
		if len(out) <= max {
			break
		}
	}
	return out
}

// timeTickLabel is a tick's time of day, or its date at midnight and on
// axes of days.
func timeTickLabel(t time.Time, span time.Duration) string {
	t = t.UTC()
	if span > 3*24*time.Hour || (t.Hour() == 0 && t.Minute() == 0) {
		return t.Format("Jan 2")
	}
	return t.Format("15:04")
}

// bucketLabel is a bucket's time span for its tooltip.
func bucketLabel(at time.Time, iv time.Duration) string {
	at = at.UTC()
	end := at.Add(iv)
	layout := "15:04"
	if iv < time.Minute {
		layout = "15:04:05"
	}
	if at.YearDay() != end.Add(-time.Nanosecond).YearDay() {
		return at.Format("Jan 2 "+layout) + " – " + end.Format("Jan 2 "+layout) + " UTC"
	}
	return at.Format("Jan 2 "+layout) + "–" + end.Format(layout) + " UTC"
}

// columnLabel writes a SQL column name for people: "input_tokens" is
// "Input tokens", "duration_ms" is "Duration (ms)". Names a query already
// wrote for people ("limits hit") only get their capital.
func columnLabel(col string) string {
	switch col {
	case "trace_id":
		return "Trace"
	case "start_time":
		return "Time"
	case "status_code":
		return "Span status"
	case "status":
		return "HTTP status"
	}
	s := col
	if strings.HasSuffix(s, "_ms") {
		s = strings.TrimSuffix(s, "_ms") + " (ms)"
	}
	s = strings.ReplaceAll(s, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
