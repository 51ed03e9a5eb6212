package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loom-gateway/loom/bench/histogram"
)

// StreamPlan is a many-long-streams run: Streams streams, opened at evenly
// spaced intended times over Ramp (open loop, like Run), each held open for
// as long as the target keeps sending. With streams that last longer than
// Ramp, all of them are open at once from Ramp until the first one ends.
type StreamPlan struct {
	Streams int
	Ramp    time.Duration
	// Timeout bounds one stream from its intended start to its end.
	Timeout time.Duration
	// SampleAt, with OnSample, calls OnSample once, that long after the
	// start, with the number of streams open then (for the memory per
	// open stream).
	SampleAt time.Duration
	OnSample func(open int64)
}

// StreamTarget is where the streams go: one raw HTTP/1.1 connection per
// stream, so what the generator holds per stream is a goroutine and a
// 4 KiB buffer and it can hold thousands on the box it shares with the
// target.
type StreamTarget struct {
	Addr   string            // host:port
	Path   string            // e.g. /v1/chat/completions
	Header map[string]string // Authorization, x-mock-* controls
	Body   []byte            // a streaming request
}

// StreamResult is what RunStreams measured. FirstChunk and MaxGap count
// completed streams only.
type StreamResult struct {
	// FirstChunk is intended start → the first complete SSE event.
	FirstChunk *histogram.Histogram
	// MaxGap is each stream's longest wait between two consecutive
	// events: where a stalled relay shows.
	MaxGap *histogram.Histogram
	// Opened streams got a 200 and an event stream; Completed ended with
	// data: [DONE] and a clean end of body; Broken is every other stream
	// (refused, cut, timed out).
	Opened, Completed, Broken int64
	Events                    int64
	BrokenSamples             []string
	Elapsed                   time.Duration
}

// ErrStreamBroken is wrapped by the reason a stream counts as broken.
var ErrStreamBroken = errors.New("stream broken")

// RunStreams opens plan.Streams streams at t and waits for them all to end.
// When ctx is done it stops opening streams and cuts the open ones.
func RunStreams(ctx context.Context, plan StreamPlan, t StreamTarget) (StreamResult, error) {
	if plan.Streams <= 0 || plan.Ramp < 0 || plan.Timeout <= 0 {
		return StreamResult{}, fmt.Errorf("%w: %d streams over %v, timeout %v", ErrPlan, plan.Streams, plan.Ramp, plan.Timeout)
	}
	req := streamRequest(t)
	st := &streamStats{first: histogram.New(), gap: histogram.New()}
	var wg sync.WaitGroup
	start := time.Now()
	if plan.OnSample != nil {
		timer := time.AfterFunc(plan.SampleAt, func() { plan.OnSample(st.open.Load()) })
		defer timer.Stop()
	}
	sl := newSleeper()
	var err error
	for i := range plan.Streams {
		intended := start.Add(time.Duration(float64(plan.Ramp) * float64(i) / float64(plan.Streams)))
		if err = sl.until(ctx, intended); err != nil {
			break
		}
		if err = ctx.Err(); err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.record(runStream(ctx, t.Addr, req, intended, plan.Timeout, st))
		}()
	}
	wg.Wait()
	r := StreamResult{FirstChunk: st.first, MaxGap: st.gap, Opened: st.opened.Load(), Completed: st.completed,
		Broken: st.broken, Events: st.events.Load(), BrokenSamples: st.samples, Elapsed: time.Since(start)}
	return r, err
}

type streamStats struct {
	open, opened, events atomic.Int64

	mu                sync.Mutex
	first, gap        *histogram.Histogram
	completed, broken int64
	samples           []string
}

type streamOutcome struct {
	first, maxGap time.Duration
	err           error
}

func (s *streamStats) record(o streamOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.err != nil {
		s.broken++
		if msg := o.err.Error(); len(s.samples) < maxErrorSamples && !slices.Contains(s.samples, msg) {
			s.samples = append(s.samples, msg)
		}
		return
	}
	s.completed++
	s.first.Record(o.first)
	s.gap.Record(o.maxGap)
}

func streamRequest(t StreamTarget) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", t.Path, t.Addr, len(t.Body))
	for k, v := range t.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	b.Write(t.Body)
	return b.Bytes()
}

var (
	headEnd    = []byte("\r\n\r\n")
	eventEnd   = []byte("\n\n")
	doneEvent  = []byte("data: [DONE]")
	lastChunk  = []byte("\r\n0\r\n\r\n")
	status200  = []byte("HTTP/1.1 200 ")
	streamType = []byte("text/event-stream")
)

// runStream makes one stream and times its events. An event ends at a
// blank line ("\n\n" in the body); chunked framing is "\r\n" and never
// forms one. Each read is timed once: events that arrive in one read
// arrived together.
func runStream(ctx context.Context, addr string, req []byte, intended time.Time, timeout time.Duration, st *streamStats) (o streamOutcome) {
	fail := func(format string, args ...any) streamOutcome {
		return streamOutcome{err: fmt.Errorf("%w: "+format, append([]any{ErrStreamBroken}, args...)...)}
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(intended.Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return fail("write request: %v", err)
	}
	// window holds the last few bytes of the previous read before the new
	// ones, so a terminator split across two reads is still seen.
	const keep = 16
	buf := make([]byte, keep+4096)
	kept := 0
	var head []byte
	inBody, done, open := false, false, false
	defer func() {
		if open {
			st.open.Add(-1)
		}
	}()
	var last time.Time
	for {
		n, err := conn.Read(buf[kept:])
		now := time.Now()
		if n > 0 {
			win := buf[:kept+n]
			if !inBody {
				head = append(head, buf[kept:kept+n]...)
				i := bytes.Index(head, headEnd)
				if i < 0 {
					if len(head) > 16<<10 {
						return fail("response head over 16 KiB")
					}
					kept = 0
					continue
				}
				if !bytes.HasPrefix(head, status200) || !bytes.Contains(bytes.ToLower(head[:i]), streamType) {
					return fail("status %q", firstLine(head))
				}
				inBody, open = true, true
				st.opened.Add(1)
				st.open.Add(1)
				// What follows the head is body: it becomes the window.
				body := head[i+len(headEnd):]
				win = append(buf[:0], body...)
				kept = 0
				if len(win) == 0 {
					continue
				}
			}
			// Count event ends that finish in the new bytes.
			events := 0
			for j := 0; ; {
				k := bytes.Index(win[j:], eventEnd)
				if k < 0 {
					break
				}
				if j+k+len(eventEnd) > kept {
					events++
				}
				j += k + 1
			}
			if events > 0 {
				if last.IsZero() {
					o.first = now.Sub(intended)
				} else if gap := now.Sub(last); gap > o.maxGap {
					o.maxGap = gap
				}
				last = now
				st.events.Add(int64(events))
			}
			if bytes.Contains(win, doneEvent) {
				done = true
			}
			if done && bytes.HasSuffix(win, lastChunk) {
				return o
			}
			kept = min(len(win), keep)
			copy(buf, win[len(win)-kept:])
		}
		if err != nil {
			switch {
			case !inBody:
				return fail("read head: %v", err)
			case last.IsZero():
				return fail("no event: %v", err)
			}
			return fail("cut after %v: %v", now.Sub(intended).Round(time.Millisecond), err)
		}
	}
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\r'); i >= 0 {
		b = b[:i]
	}
	return strconv.Quote(string(b[:min(len(b), 80)]))
}
