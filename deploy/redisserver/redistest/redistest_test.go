package redistest

import (
	"bufio"
	"net"
	"testing"
)

func TestStart_TwoServers_SeparateData(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Port() == b.Port() {
		t.Fatalf("both servers on port %d", a.Port())
	}
	send(t, a.Addr(), "SET only_in_a 1", "+OK")
	send(t, b.Addr(), "EXISTS only_in_a", ":0")
}

// send runs one inline command and checks the first line of the reply.
func send(t *testing.T, addr, cmd, want string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if got := line[:len(line)-2]; got != want {
		t.Errorf("%s on %s = %q, want %q", cmd, addr, got, want)
	}
}
