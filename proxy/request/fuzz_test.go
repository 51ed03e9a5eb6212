package request

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

var fuzzOps = []call.Operation{call.OpChat, call.OpTextCompletion, call.OpEmbeddings}

// rawMember is one top-level member as sent: key with its quotes, value.
type rawMember struct{ key, value string }

func rawMembers(t *testing.T, b []byte) []rawMember {
	t.Helper()
	var m json.Members
	if !m.Reset(b) {
		t.Fatalf("not an object: %q", b)
	}
	var out []rawMember
	for m.Next() {
		out = append(out, rawMember{string(m.QuotedKey()), string(m.Value())})
	}
	if m.Err() != nil {
		t.Fatalf("walk %q: %v", b, m.Err())
	}
	return out
}

func decodedKeyOf(t *testing.T, quoted string) string {
	k, ok := json.AppendString(nil, []byte(quoted))
	if !ok {
		t.Fatalf("key %s", quoted)
	}
	return string(k)
}

// FuzzRewrite parses any body for each operation and rewrites it for the
// upstream as the server does: a body Parse refuses is refused with an
// OpenAI-shaped error; one it accepts comes out as valid JSON, with the
// model and include_usage that were asked for (read back by Parse itself and
// by encoding/json), every other member byte-identical and in place, and no
// change at all when there is nothing to change.
func FuzzRewrite(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "..", "bench", "fixtures", "wire", "*", "*.json"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && !strings.HasSuffix(p, ".headers.json") {
			f.Add(b, "gpt-4o-2024-08-06", uint8(0)) // responses, not requests: mostly refused, still bytes
		}
	}
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{}],"stream":true}`,
		`{"model":"m","messages":[{}],"stream":true,"stream_options":null}`,
		`{"model":"m","messages":[{}],"stream":true,"stream_options":{}}`,
		`{"stream_options":{"x":1},"model":"m","messages":[{}],"stream":true}`,
		`{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":false}}`,
		`{ "mod\u0065l" : "m\u00e9" ,"messages":[{}], "stream" : true , "stream_options" : { "include_\u0075sage" : null } } `,
		`{"model":"m","prompt":"p","stream":true,"temperature":1.5,"top_p":0.5,"n":2,"max_tokens":5,"seed":-1}`,
		`{"model":"m","input":["a"],"encoding_format":"base64"}`,
		`{"model":"m","messages":[{}],"stream_options":{"include_usage":true,"include_usage":false},"stream":true}`,
		`{"model":"m\q","messages":[{}]}`, `[]`, `{"model":""}`, `{"model":"m","messages":[]}`,
	} {
		f.Add([]byte(s), "up", uint8(0))
		f.Add([]byte(s), "", uint8(1))
		f.Add([]byte(s), "we\"ird\xff", uint8(2))
	}
	f.Fuzz(func(t *testing.T, body []byte, upstreamModel string, opIndex uint8) {
		op := fuzzOps[int(opIndex)%len(fuzzOps)]
		orig := bytes.Clone(body)
		var r Request
		err := r.Parse(op, body)
		if !bytes.Equal(body, orig) {
			t.Fatal("Parse changed the body")
		}
		if err != nil {
			if ae := (*apierror.Error)(nil); !errors.As(err, &ae) {
				t.Fatalf("Parse error %v is not an OpenAI-shaped error", err)
			}
			return
		}
		if !stdjson.Valid(blankControls(body)) {
			t.Fatalf("Parse accepted a body that is not JSON: %q", body)
		}
		out := r.AppendUpstreamBody([]byte("dst:"), body, upstreamModel)
		if !bytes.HasPrefix(out, []byte("dst:")) {
			t.Fatal("AppendUpstreamBody lost dst")
		}
		out = out[len("dst:"):]
		if !bytes.Equal(body, orig) {
			t.Fatal("AppendUpstreamBody changed the body")
		}
		wantModel := string(r.Model)
		if upstreamModel != "" {
			wantModel = validRunes(upstreamModel)
		}
		changesModel := upstreamModel != "" && upstreamModel != string(r.Model)
		if !changesModel && !r.AddsUsage() {
			if !bytes.Equal(out, body) {
				t.Fatalf("nothing to change, yet %q became %q", body, out)
			}
			return
		}
		if !json.Valid(out) || !stdjson.Valid(blankControls(out)) {
			t.Fatalf("%q rewritten into invalid JSON %q", body, out)
		}
		var r2 Request
		if err := r2.Parse(op, out); err != nil {
			t.Fatalf("the rewritten body %q is refused: %v", out, err)
		}
		if utf8.Valid(r.Model) && string(r2.Model) != wantModel {
			t.Fatalf("upstream model %q, want %q", r2.Model, wantModel)
		}
		if r2.Stream != r.Stream || r2.IncludeUsage != (r.IncludeUsage || r.AddsUsage()) {
			t.Fatalf("stream %v include_usage %v after rewriting %q into %q", r2.Stream, r2.IncludeUsage, body, out)
		}
		r2.Params.RequestBodyBytes, r2.Params.IncludeUsage = r.Params.RequestBodyBytes, r.Params.IncludeUsage
		if !equalParams(r.Params, r2.Params) {
			t.Fatalf("params %+v became %+v", r.Params, r2.Params)
		}
		checkUntouched(t, body, out, changesModel, r.AddsUsage())
	})
}

// checkUntouched compares the members of the body and of its rewrite: only
// model and stream_options may differ (stream_options may be added last),
// and inside stream_options only include_usage.
func checkUntouched(t *testing.T, body, out []byte, changesModel, addsUsage bool) {
	in, got := rawMembers(t, body), rawMembers(t, out)
	if addsUsage && len(got) == len(in)+1 {
		if last := got[len(got)-1]; last.key != `"stream_options"` || last.value != `{"include_usage":true}` {
			t.Fatalf("added member %v", last)
		}
		got = got[:len(in)]
	}
	if len(got) != len(in) {
		t.Fatalf("members %v became %v", in, got)
	}
	for i := range in {
		if in[i].key != got[i].key {
			t.Fatalf("member %d key %s became %s", i, in[i].key, got[i].key)
		}
		switch decodedKeyOf(t, in[i].key) {
		case "model":
			if !changesModel && in[i].value != got[i].value {
				t.Fatalf("model %s changed to %s", in[i].value, got[i].value)
			}
			continue
		case "stream_options":
			if addsUsage && strings.HasPrefix(in[i].value, "{") {
				checkOptions(t, in[i].value, got[i].value)
				continue
			}
			if addsUsage {
				continue // null replaced by {"include_usage":true}
			}
		}
		if in[i].value != got[i].value {
			t.Fatalf("member %s changed from %s to %s", in[i].key, in[i].value, got[i].value)
		}
	}
}

func checkOptions(t *testing.T, in, out string) {
	var a, b []rawMember
	for _, m := range rawMembers(t, []byte(in)) {
		if decodedKeyOf(t, m.key) != "include_usage" {
			a = append(a, m)
		}
	}
	for _, m := range rawMembers(t, []byte(out)) {
		if decodedKeyOf(t, m.key) != "include_usage" {
			b = append(b, m)
		}
	}
	if len(a) != len(b) {
		t.Fatalf("stream_options %s became %s", in, out)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("stream_options member %v became %v", a[i], b[i])
		}
	}
}

// validRunes is s as AppendQuote writes it: each invalid byte as U+FFFD.
func validRunes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

// blankControls turns raw control bytes into spaces: json.Valid lets them
// through inside strings (see json.Valid), encoding/json does not.
func blankControls(b []byte) []byte {
	out := bytes.Clone(b)
	for i, c := range out {
		if c < 0x20 {
			out[i] = ' '
		}
	}
	return out
}

func equalParams(a, b call.Params) bool {
	eqF := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	eqI := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eqF(a.Temperature, b.Temperature) && eqF(a.TopP, b.TopP) && eqI(a.MaxTokens, b.MaxTokens) &&
		eqI(a.N, b.N) && eqI(a.Seed, b.Seed) && a.EncodingFormat == b.EncodingFormat &&
		a.RequestBodyBytes == b.RequestBodyBytes && a.IncludeUsage == b.IncludeUsage
}
