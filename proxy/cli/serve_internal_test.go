package cli

import (
	"net/http"
	"testing"

	"github.com/loom-gateway/loom/proxy/config"
)

// The admin API and the console listen with net/http: each must bound a
// slow client's headers, body, reading of the answer and idling, and the
// size of its headers, like the gateway.
func TestAdminAndConsoleListeners_HaveEveryTimeoutAndAHeaderCap(t *testing.T) {
	hs := httpServer(config.DefaultTimeouts, http.NotFoundHandler())
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.WriteTimeout <= 0 || hs.IdleTimeout <= 0 ||
		hs.MaxHeaderBytes <= 0 || hs.MaxHeaderBytes > 64<<10 {
		t.Errorf("server = read header %v, read %v, write %v, idle %v, max header bytes %d; want all set",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, hs.MaxHeaderBytes)
	}
	if hs.ReadTimeout != config.DefaultTimeouts.ClientRead || hs.WriteTimeout != config.DefaultTimeouts.ClientWrite ||
		hs.IdleTimeout != config.DefaultTimeouts.ClientIdle {
		t.Error("the listeners do not follow timeouts.client_*")
	}
	// Unset (zero) timeouts still get bounds.
	if z := httpServer(config.Timeouts{}, http.NotFoundHandler()); z.ReadHeaderTimeout <= 0 || z.ReadTimeout <= 0 ||
		z.WriteTimeout <= 0 || z.IdleTimeout <= 0 {
		t.Errorf("zero timeouts gave read header %v, read %v, write %v, idle %v", z.ReadHeaderTimeout, z.ReadTimeout, z.WriteTimeout, z.IdleTimeout)
	}
}
