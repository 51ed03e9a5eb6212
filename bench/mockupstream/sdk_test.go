package mockupstream

import (
	"context"
	"net"
	"net/http"
	"testing"
)

// httpClient is a net/http client whose every connection goes to m's in-memory listener, for the official
// SDKs, which speak net/http.
func (m *testMock) httpClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return m.ln.Dial() }}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}
