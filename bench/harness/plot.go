package harness

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// colors per target, the same in every panel.
var colors = map[string]string{Direct: "#1b9e77", Traced: "#d95f02", Untraced: "#7570b3"}

// WriteSVG draws latency by percentile, one panel per scenario, one line
// per target: the x axis spreads the tail (1/(1-q), log scale) the way HDR
// plots do, so p99.9 is as visible as p50.
func WriteSVG(w io.Writer, all []ScenarioResult) {
	const pw, ph, pad = 420, 260, 50
	// The long-streams phase has no latency curves: its section says it.
	var scenarios []ScenarioResult
	for _, s := range all {
		if len(s.Targets) > 0 {
			scenarios = append(scenarios, s)
		}
	}
	cols := 2
	rows := (len(scenarios) + cols - 1) / cols
	width, height := cols*pw, rows*ph+30
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	x := func(q float64) float64 { return math.Log10(1 / (1 - q)) } // 0.5→0.3, 0.9999→4
	xmin, xmax := x(CurvePoints[0]), x(CurvePoints[len(CurvePoints)-1])
	for i, s := range scenarios {
		ox, oy := float64((i%cols)*pw), float64((i/cols)*ph)
		ymax := 0.0
		for _, t := range s.Targets {
			for _, v := range t.Curve {
				ymax = math.Max(ymax, v)
			}
		}
		ymax = NiceCeil(ymax)
		px := func(q float64) float64 { return ox + pad + (x(q)-xmin)/(xmax-xmin)*(pw-pad-20) }
		py := func(v float64) float64 { return oy + ph - pad + 10 - v/ymax*(ph-pad-30) }
		fmt.Fprintf(w, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", ox+pad, oy+16, esc(s.Description))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", px(CurvePoints[0]), py(0), px(CurvePoints[len(CurvePoints)-1]), py(0))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", px(CurvePoints[0]), py(0), px(CurvePoints[0]), py(ymax))
		for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999} {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">p%s</text>`+"\n", px(q), py(0)+14, strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", q*100), "0"), "."))
		}
		for _, f := range []float64{0, 0.5, 1} {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%.3g ms</text>`+"\n", px(CurvePoints[0])-4, py(f*ymax)+4, f*ymax)
		}
		for j, t := range s.Targets {
			var pts []string
			for k, v := range t.Curve {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(CurvePoints[k]), py(v)))
			}
			c := colors[t.Target]
			fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
			fmt.Fprintf(w, `<text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n", ox+pad+10, oy+34+float64(j)*13, c, t.Target)
		}
	}
	fmt.Fprintf(w, `<text x="10" y="%d" fill="#555">latency from intended send time, by percentile (log tail scale)</text>`+"\n", height-8)
	fmt.Fprintln(w, "</svg>")
}

// NiceCeil rounds up to 1, 2 or 5 times a power of ten: a plot's axis top.
func NiceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
