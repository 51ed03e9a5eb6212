//go:build linux

package server_test

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
)

// unansweredAddr is a TCP address whose connects hang: a socket listening
// with a backlog of zero that never accepts, its one queue place taken.
// Linux drops the SYNs past the backlog, so a dial waits until its timeout.
func unansweredAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full: connects now hang
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Fatalf("connects to %s never hung: cannot fill its backlog", addr)
	return ""
}

// timeouts.connect bounds dialling an upstream: one that never completes the
// handshake is Loom's 504 upstream_timeout after connect, not after
// first_byte, and the record says the connect timed out.
func TestServer_UpstreamNeverAcceptsConnect_504AfterConnectTimeout(t *testing.T) {
	addr := unansweredAddr(t)
	st := startRawStack(t, "http://"+addr+"/v1", "", "connect: 300ms, first_byte: 30s, stream_idle: 30s")
	for _, body := range []string{rawChat, rawChatStream} {
		seen := st.count()
		start := time.Now()
		status, _, b := st.do("POST", "/v1/chat/completions", st.keyA, body, nil)
		took := time.Since(start)
		assertError(t, status, b, 504, "upstream_timeout")
		// Below 300 ms the dial was not given its timeout; the upper bound
		// only tells the connect timeout from first_byte's 30 s, with room
		// for a busy machine.
		if took < 300*time.Millisecond || took > 10*time.Second {
			t.Errorf("answered after %v, want about the 300ms connect timeout", took)
		}
		rec := st.lastRecord(seen)
		if rec.Outcome != call.OutcomeUpstreamFailed || rec.ErrorType != "timeout" || !strings.Contains(rec.ErrorMessage, "connect") {
			t.Fatalf("record: outcome %s type %q message %q", rec.Outcome, rec.ErrorType, rec.ErrorMessage)
		}
	}
}
