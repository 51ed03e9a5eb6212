package freeport

import (
	"errors"
	"fmt"
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

func TestTry_PortTakenMeanwhile_TriesAnotherThreeTimesInAll_AskedPortOnce(t *testing.T) {
	taken := errors.New("address in use")
	var ports []int
	_, err := Try(0, taken, func(port int) (int, error) {
		ports = append(ports, port)
		return 0, fmt.Errorf("listen: %w", taken)
	})
	if !errors.Is(err, taken) || len(ports) != 3 || ports[0] == 0 {
		t.Fatalf("free port: %v after tries on %v, want the in-use error after 3 tries on free ports", err, ports)
	}
	ports = nil
	got, err := Try(0, taken, func(port int) (int, error) {
		ports = append(ports, port)
		if len(ports) < 2 {
			return 0, taken
		}
		return port, nil
	})
	if err != nil || got != ports[1] || len(ports) != 2 {
		t.Fatalf("second try: %d, %v after %v, want the second port", got, err, ports)
	}
	ports = nil
	if _, err := Try(4242, taken, func(port int) (int, error) {
		ports = append(ports, port)
		return 0, taken
	}); !errors.Is(err, taken) || len(ports) != 1 || ports[0] != 4242 {
		t.Fatalf("asked port: %v after %v, want one try on 4242", err, ports)
	}
	other := errors.New("no such binary")
	ports = nil
	if _, err := Try(0, taken, func(port int) (int, error) {
		ports = append(ports, port)
		return 0, other
	}); !errors.Is(err, other) || len(ports) != 1 {
		t.Fatalf("other error: %v after %v, want it at once", err, ports)
	}
}
