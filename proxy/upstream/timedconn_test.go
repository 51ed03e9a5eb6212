package upstream

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// deadlineConn records the read deadlines set on it; each Read returns the
// next of its replies (bytes read) without blocking.
type deadlineConn struct {
	net.Conn
	deadlines []time.Time
	replies   []int
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.deadlines = append(c.deadlines, t)
	return nil
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	n := c.replies[0]
	c.replies = c.replies[1:]
	return n, nil
}

func (c *deadlineConn) Write(p []byte) (int, error) { return len(p), nil }

// The first byte of a response must come within firstByte of the request
// (however many reads and writes that takes), every later read within idle
// of its start (up to an eighth more, see timedConn): a long stream is never
// cut by one deadline for the whole response.
func TestTimedConn_FirstByteFromTheRequest_IdleFromEachRead(t *testing.T) {
	const firstByte, idle = time.Hour, time.Minute
	fake := &deadlineConn{replies: []int{0, 0, 5, 5, 0, 7}}
	c := &timedConn{Conn: fake, firstByte: firstByte, idle: idle}
	buf := make([]byte, 16)

	before := time.Now()
	c.Write([]byte("POST /v1/chat/completions"))
	c.Write([]byte(" body")) // the same request: the first-byte clock keeps running
	after := time.Now()
	c.Read(buf) // nothing yet
	c.Read(buf) // nothing yet
	c.Read(buf) // the response starts
	if len(fake.deadlines) != 1 {
		t.Fatalf("first-byte deadline set %d times while no byte came (%v), want once", len(fake.deadlines), fake.deadlines)
	}
	if d := fake.deadlines[0]; d.Before(before.Add(firstByte)) || d.After(after.Add(firstByte)) {
		t.Fatalf("waiting for the first byte: deadline %v, want firstByte after the request was written", d)
	}

	start := time.Now()
	c.Read(buf)
	c.Read(buf)
	end := time.Now()
	if len(fake.deadlines) != 2 {
		t.Fatalf("deadlines %v: want the idle one set once for two reads in quick succession", fake.deadlines)
	}
	if d := fake.deadlines[1]; d.Before(start.Add(idle)) || d.After(end.Add(idle+idle/8)) {
		t.Fatalf("reading the stream: deadline %v, want between idle and idle+1/8 after the read began", d)
	}

	// The next request on the pooled connection waits for its own first
	// byte, not the previous stream's idle.
	before = time.Now()
	c.Write([]byte("POST"))
	c.Read(buf)
	if d := fake.deadlines[len(fake.deadlines)-1]; d.Before(before.Add(firstByte)) {
		t.Fatalf("second request: deadline %v, want firstByte after it was written", d)
	}
}

// A busy stream moves its read deadline about once every idle/8, not on
// every read: each move is a timer operation, and a gateway with thousands
// of streams reads tens of thousands of events a second. No read ever gets
// less than idle.
func TestTimedConn_BusyStream_MovesTheIdleDeadlineRarely(t *testing.T) {
	const idle = 80 * time.Millisecond
	replies := make([]int, 200)
	for i := range replies {
		replies[i] = 1
	}
	fake := &deadlineConn{replies: replies}
	c := &timedConn{Conn: fake, idle: idle}
	buf := make([]byte, 4)
	began := time.Now()
	for range replies {
		start := time.Now()
		c.Read(buf)
		if d := fake.deadlines[len(fake.deadlines)-1]; d.Before(start.Add(idle)) {
			t.Fatalf("a read started at %v got deadline %v, less than idle", start, d)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(began)
	// One move per idle/8 (10 ms) of the run at most, plus the first.
	if most := int(elapsed/(idle/8)) + 1; len(fake.deadlines) > most {
		t.Fatalf("%d reads over %v moved the deadline %d times, want at most %d", len(replies), elapsed, len(fake.deadlines), most)
	}
}

func TestTimedConn_ZeroTimeouts_SetNoDeadline(t *testing.T) {
	fake := &deadlineConn{replies: []int{3, 3}}
	c := &timedConn{Conn: fake}
	buf := make([]byte, 4)
	c.Write([]byte("x"))
	c.Read(buf)
	c.Read(buf)
	if len(fake.deadlines) != 0 {
		t.Fatalf("deadlines %v set with firstByte and idle 0", fake.deadlines)
	}
}

// Over a real connection: an upstream that accepts the request and says
// nothing is given up on once firstByte has passed.
func TestTimedConn_SilentUpstream_ReadFailsWithDeadlineExceeded(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() { // read the request, answer nothing
		buf := make([]byte, 64)
		for {
			if _, err := server.Read(buf); err != nil {
				return
			}
		}
	}()
	const firstByte = 20 * time.Millisecond
	c := &timedConn{Conn: client, firstByte: firstByte, idle: time.Hour}
	start := time.Now()
	if _, err := c.Write([]byte("POST")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a silent upstream: %v, want a deadline error", err)
	}
	if waited := time.Since(start); waited < firstByte {
		t.Fatalf("gave up after %v, before firstByte (%v)", waited, firstByte)
	}
}
