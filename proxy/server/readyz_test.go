package server_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// /readyz answers 200 while the gateway is degraded (serving its last
// snapshot: taking it out of a load balancer would turn a store outage into
// a traffic outage) and 503 once it drains for shutdown, while /healthz
// stays 200: on the gateway's listener and on the ops listener alike.
func TestServer_Readyz_200WhenDegraded503WhileDraining(t *testing.T) {
	st := startStack(t, stackOptions{})
	ops := serveOps(t, st)
	for _, base := range []string{st.url, ops} {
		if status, body := get(t, base+"/readyz"); status != 200 || body != `{"status":"ok"}` {
			t.Fatalf("%s/readyz: %d %s", base, status, body)
		}
	}
	st.loom.SetDegraded("tenant store unreachable")
	for _, base := range []string{st.url, ops} {
		if status, body := get(t, base+"/readyz"); status != 200 || body != `{"status":"degraded","reason":"tenant store unreachable"}` {
			t.Fatalf("degraded %s/readyz: %d %s, want 200 naming the reason", base, status, body)
		}
		if status, body := get(t, base+"/healthz"); status != 200 || body != `{"status":"ok"}` {
			t.Fatalf("degraded %s/healthz: %d %s", base, status, body)
		}
	}

	// A stream in flight keeps the shutdown draining; the ops listener,
	// which outlives the gateway's, says so.
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`
	resp := openStream(t, st, body, map[string]string{"x-mock-chunks": "1000", "x-mock-chunk-delay-ms": "20"})
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- st.loom.Shutdown(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, got := get(t, ops+"/readyz")
		if status == 503 {
			if got != `{"status":"draining"}` {
				t.Fatalf("draining /readyz body %s", got)
			}
			break
		}
		if status != 200 || time.Now().After(deadline) {
			t.Fatalf("/readyz while shutting down: %d %s, want 503", status, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status, got := get(t, ops+"/healthz"); status != 200 || !strings.Contains(got, `"ok"`) {
		t.Fatalf("draining /healthz: %d %s, want 200: the process is alive", status, got)
	}
	resp.Body.Close() // the client leaves; the shutdown can finish
	<-done
}
