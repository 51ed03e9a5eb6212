package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddr_CanBeListenedOn(t *testing.T) {
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("Addr() = %s, which cannot be listened on: %v", addr, err)
	}
	ln.Close()
}

func TestPort_IsALoopbackPortThatCanBeListenedOn(t *testing.T) {
	port, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("Port() = %d, which cannot be listened on: %v", port, err)
	}
	ln.Close()
}

func TestOn_TakenAddress_Fails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got, err := On(ln.Addr().String()); err == nil {
		t.Fatalf("On(a taken address) = %s, want an error", got)
	}
}
