package pgserver

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loom-gateway/loom/deploy/freeport"
)

// choosePort returns the port recorded in dir by an earlier Start if it is
// free (unless fresh), else one the kernel says is free. Another program
// may take it before the server binds it; Start then tries again.
func choosePort(dir string, fresh bool) (int, error) {
	if !fresh {
		if b, err := os.ReadFile(filepath.Join(dir, portFile)); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 && p < 65536 {
				if _, err := freeport.On(net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
					return p, nil
				}
			}
		}
	}
	return freeport.Port()
}
