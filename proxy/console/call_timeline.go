package console

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// timelineView is the SVG timeline: a row per span (the SERVER span, then
// each upstream attempt), on a time axis in ms from the call's start, and
// the first-chunk mark on the attempt that streamed.
type timelineView struct {
	W, H, Left, Right, AxisY float64
	Rows                     []tlRow
	Ticks                    []tlTick
	Marks                    []tlMark
}

type tlRow struct {
	Label, Class, Title, Dur string
	Y, X, W, LabelY          float64
	// DurX and DurInside place the duration: inside a wide bar (white),
	// past the end of a narrow one.
	DurX      float64
	DurInside bool
}

type tlTick struct {
	X     float64
	Label string
}

type tlMark struct {
	X, Y1, Y2, LabelX, LabelY float64
	Label                     string
}

const (
	tlWidth = 900.0
	tlLeft  = 210.0 // the labels' column
	tlRight = 20.0
	tlRowH  = 26.0
	tlTop   = 6.0
)

func buildTimeline(srv *spanRow, clients, spans []*spanRow) timelineView {
	rows := []*spanRow{srv}
	rows = append(rows, clients...)
	for _, sp := range spans {
		if sp != srv && sp.Kind != "client" {
			rows = append(rows, sp)
		}
	}
	origin, end := srv.Start, srv.End
	for _, sp := range rows {
		if sp.Start.Before(origin) {
			origin = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
	}
	total := float64(end.Sub(origin)) / float64(time.Millisecond)
	plot := tlWidth - tlLeft - tlRight
	step := timelineStep(total, 6)
	if total <= 0 {
		total = 1
	}
	x := func(t time.Time) float64 {
		return tlLeft + round2(float64(t.Sub(origin))/float64(time.Millisecond)/total*plot)
	}
	v := timelineView{W: tlWidth, Left: tlLeft, Right: tlWidth - tlRight}
	for i, sp := range rows {
		y := tlTop + float64(i)*tlRowH
		r := tlRow{Y: y, X: x(sp.Start), Dur: millis(sp.durationMs()), LabelY: y + 14, Class: sp.Kind}
		r.W = max(x(sp.End)-r.X, 2)
		switch {
		case sp == srv:
			r.Label = "Loom · " + sp.Name
		case sp.Kind == "client":
			r.Label = "Attempt " + strconv.Itoa(sp.attempt())
			if dep := sp.str("deployment"); dep != "" {
				r.Label += " · " + dep
			}
			if n, ok := sp.num("http_status"); ok {
				r.Label += " · " + strconv.Itoa(int(n))
			}
		default:
			r.Label = strings.ToUpper(sp.Kind) + " · " + sp.Name
		}
		if len(r.Label) > 34 {
			r.Label = shorten(r.Label, 33) + "…"
		}
		if sp.Status == "error" || sp.str("error_type") != "" && sp.Kind == "client" {
			r.Class += " error"
		}
		r.Title = r.Label + ": " + r.Dur
		if r.W > 70 {
			r.DurInside, r.DurX = true, r.X+r.W-4
		} else {
			r.DurX = r.X + r.W + 4
		}
		v.Rows = append(v.Rows, r)
		if sp.Kind == "client" {
			if ttfc, ok := sp.num("time_to_first_chunk_ms"); ok && ttfc > 0 {
				mx := x(sp.Start.Add(time.Duration(ttfc * float64(time.Millisecond))))
				v.Marks = append(v.Marks, tlMark{X: mx, Y1: y - 2, Y2: y + tlRowH - 6, LabelX: mx + 3, LabelY: y - 1,
					Label: "first chunk " + millis(ttfc)})
			}
		}
	}
	v.AxisY = tlTop + float64(len(rows))*tlRowH + 4
	v.H = v.AxisY + 20
	if step > 0 {
		for t := 0.0; t <= total+step/1e6; t += step {
			v.Ticks = append(v.Ticks, tlTick{X: tlLeft + round2(t/total*plot), Label: millis(t)})
		}
	}
	return v
}

// timelineStep is a round tick step (see niceStep) giving at most n ticks
// over total; 0 for no ticks.
func timelineStep(total float64, n int) float64 {
	if total <= 0 || math.IsNaN(total) || math.IsInf(total, 0) {
		return 0
	}
	return niceStep(total / float64(n))
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
