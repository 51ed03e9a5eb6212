package tracing

import (
	"errors"
	"time"
)

// ship sends what the spool has committed, batch by batch, in order, and
// acknowledges each batch to the spool only once the collector has it, so
// the spool's cursor never passes a call the collector has not taken. It
// stops when Shutdown cancels it; what is unsent then stays in the spool.
func (t *Tracer) ship() {
	defer close(t.shipDone)
	var req []byte
	for {
		b, err := t.spool.Read(t.shipCtx, t.cfg.BatchBytes, t.cfg.BatchSize)
		if err != nil {
			return // cancelled, or the spool closed
		}
		if !t.deliver(b.Records, &req) {
			return
		}
		if err := t.spool.Ack(b); err != nil {
			// The cursor did not move: the batch ships again after a
			// restart, and the store drops the duplicates.
			t.log.Error("tracing: spool cursor not saved", "error", err)
		}
		// A small batch means the shipper keeps up: let the next one
		// gather for BatchTimeout rather than send (and ack, with its
		// fdatasync) every few calls. An export and an ack per commit cost
		// more CPU than the calls' own encoding. A backlog ships at once.
		if len(b.Records) < t.cfg.BatchSize && b.Bytes < t.cfg.BatchBytes/2 && t.cfg.BatchTimeout > 0 {
			select {
			case <-t.shipCtx.Done():
				return
			case <-t.flushNow:
			case <-time.After(t.cfg.BatchTimeout):
			}
		}
	}
}

// deliver sends records as one request until the collector takes it. A
// request the collector refuses as malformed or too large is split in
// halves, recursively, so the good calls go through and only the refused
// ones are set aside, counted and logged. It returns false when shutdown
// cut it short.
func (t *Tracer) deliver(records [][]byte, req *[]byte) bool {
	b := (*req)[:0]
	for _, r := range records {
		b = append(b, r...)
	}
	*req = b
	rejected, err := t.sendRetrying(b)
	switch {
	case err == nil:
		t.shipped.Add(uint64(len(records)))
		if rejected > 0 {
			t.rejected.Add(uint64(rejected))
			t.log.Warn("collector accepted a batch in part", "calls", len(records), "rejected_spans", rejected)
		}
		return true
	case errors.Is(err, errAborted):
		return false
	case len(records) == 1:
		t.invalid.Add(1)
		t.logRefused(records[0], err)
		return true
	}
	half := len(records) / 2
	var sub []byte
	return t.deliver(records[:half], &sub) && t.deliver(records[half:], &sub)
}

var errAborted = errors.New("shutdown came first")

// sendRetrying sends req, retrying failures that are not refusals with
// backoff (250 ms doubling to 30 s) for as long as it takes: an outage
// costs spool space, never calls.
func (t *Tracer) sendRetrying(req []byte) (int64, error) {
	backoff := 250 * time.Millisecond
	for {
		rejected, err := t.send(t.shipCtx, req)
		if err == nil {
			return rejected, nil
		}
		if t.shipCtx.Err() != nil {
			return 0, errAborted
		}
		n := t.fails.Add(1)
		if refused(err) {
			return 0, err
		}
		if n == 1 || n%20 == 0 {
			t.log.Warn("tracing: export failed; retrying the same batch", "error", err, "failed_attempts", n,
				"spool_backlog", t.spool.Stats().DiskBytes)
		}
		select {
		case <-t.shipCtx.Done():
			return 0, errAborted
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// refusedLogEvery rate-limits the log line about refused calls.
const refusedLogEvery = 10 * time.Second

// logRefused names the trace id of a call the collector refused, at most
// once per refusedLogEvery (the count is always in the metrics).
func (t *Tracer) logRefused(record []byte, reason error) {
	now := time.Now()
	if !t.lastRefLog.IsZero() && now.Sub(t.lastRefLog) < refusedLogEvery {
		return
	}
	t.lastRefLog = now
	id, _ := traceIDOf(record)
	t.log.Error("collector refused a call's spans as malformed or too large; set them aside, the rest flows on",
		"trace_id", id, "bytes", len(record), "error", reason, "dropped_invalid_total", t.invalid.Load())
}
