// Package freeport finds TCP addresses that are free to listen on. A port
// is free when checked; another program may take it before the caller
// binds it, which shows up as a failed start that the caller may retry. It
// never holds a port open after it returns.
package freeport

import (
	"errors"
	"fmt"
	"net"
)

// Addr returns a loopback address, "127.0.0.1:PORT", free when checked.
func Addr() (string, error) { return On("127.0.0.1:0") }

// Port returns a loopback port free when checked.
func Port() (int, error) {
	a, err := listen("127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	return a.Port, nil
}

// On returns want, host:port, if it can be listened on now; a port of 0
// becomes one the kernel says is free on that host.
func On(want string) (string, error) {
	a, err := listen(want)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

func listen(addr string) (*net.TCPAddr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr), nil
}

// Try starts a server with start on want, or, when want is 0, on a free
// port. Between picking a free port and listening on it another program
// may take it, so when start fails with an error that is inUse, Try picks
// another and tries again, three times in all. A port that was asked for
// is tried once.
func Try[T any](want int, inUse error, start func(port int) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		port := want
		if port == 0 {
			var err error
			if port, err = Port(); err != nil {
				var zero T
				return zero, err
			}
		}
		s, err := start(port)
		if err == nil || want != 0 || attempt == 3 || !errors.Is(err, inUse) {
			return s, err
		}
	}
}
