package server_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// A request fasthttp cannot even read (here: a body announced over the
// limit) is recorded without its raw path: POST /%FF once named a span
// "POST /\xff", which no OTLP encoder accepts, and stopped span export for
// every tenant (issue 10).
func TestTransportError_RecordCarriesNoRawPath(t *testing.T) {
	st := startStack(t, stackOptions{})
	host := strings.TrimPrefix(st.url, "http://")
	status, _ := rawExchange(t, host, "POST /%FF HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+st.keyA+
		"\r\nContent-Length: 100000000\r\n\r\n")
	if status != 413 {
		t.Fatalf("status %d, want 413", status)
	}
	recs := st.waitRecords(1)
	r := recs[len(recs)-1]
	if r.HTTPRoute != "" || r.ErrorType != "request_too_large" {
		t.Fatalf("record route %q, error.type %q: want no route and request_too_large", r.HTTPRoute, r.ErrorType)
	}
}

// A model name is the client's bytes: the record keeps at most 256 bytes of
// it, as valid UTF-8, however long or broken the name in the request.
func TestUnknownModel_RecordedNameIsCappedAndUTF8(t *testing.T) {
	st := startStack(t, stackOptions{maxBody: 8 << 20})
	long := strings.Repeat("é", 3<<20) // 6 MiB
	st.do("POST", "/v1/chat/completions", st.keyA, `{"model":"`+long+`","messages":[{"role":"user","content":"x"}]}`, nil)
	st.do("GET", "/v1/models/"+url.PathEscape("\xff"+strings.Repeat("m", 1000)), st.keyA, "", nil)
	recs := st.waitRecords(2)
	for _, r := range recs {
		if r.Model == "" || len(r.Model) > 256 || !utf8.ValidString(r.Model) {
			t.Errorf("%s %s: model recorded as %d bytes (valid UTF-8: %v)", r.HTTPMethod, r.HTTPRoute, len(r.Model), utf8.ValidString(r.Model))
		}
	}
}

// A streamed request refused before it reaches an upstream (its model is
// unknown) is still recorded as streamed: the record (and so the SERVER
// span's loom.request.stream) says what the client asked, not what was
// sent. The console showed a streamed 404 as "Stream: no".
func TestUnknownModel_StreamedRequest_RecordedAsStreamed(t *testing.T) {
	st := startStack(t, stackOptions{})
	for i, stream := range []bool{true, false} {
		body := `{"model":"no-such-model","stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"x"}]}`
		if code, _, _ := st.do("POST", "/v1/chat/completions", st.keyA, body, nil); code != 404 {
			t.Fatalf("stream %v: status %d, want 404", stream, code)
		}
		r := st.lastRecord(i)
		if r.Stream != stream || r.Status != 404 {
			t.Errorf("stream %v: recorded stream %v, status %d", stream, r.Stream, r.Status)
		}
	}
}
