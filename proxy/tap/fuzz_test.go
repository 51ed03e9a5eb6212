package tap

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/call"
)

// fixtureChunks are the recorded bodies and every SSE data payload.
func fixtureChunks(tb testing.TB) [][]byte {
	tb.Helper()
	paths, _ := filepath.Glob(filepath.Join("..", "..", "bench", "fixtures", "wire", "*", "*"))
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		switch {
		case strings.HasSuffix(p, ".headers.json"):
		case strings.HasSuffix(p, ".json"):
			out = append(out, b)
		case strings.HasSuffix(p, ".sse") || strings.HasSuffix(p, ".jsonl"):
			// The first two chunks and the last three (finish, usage, end)
			// of each stream: all of them would be a thousand near
			// duplicates replayed before CI's few seconds of fuzzing.
			var all [][]byte
			for _, line := range bytes.Split(b, []byte("\n")) {
				if line = bytes.TrimPrefix(line, []byte("data: ")); len(line) > 0 && line[0] == '{' {
					all = append(all, line)
				}
			}
			if len(all) > 5 {
				all = append(all[:2:2], all[len(all)-3:]...)
			}
			out = append(out, all...)
		}
	}
	if len(out) == 0 {
		tb.Fatal("no recorded chunks")
	}
	return out
}

// hasDuplicateKeys reports whether any object in the valid document b
// repeats a key. Decoders disagree on which one wins, so the oracle below
// only speaks for documents without.
func hasDuplicateKeys(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		keys   map[string]bool
		object bool
		atKey  bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && top.object {
			if top.atKey {
				k := tok.(string)
				if top.keys[k] {
					return true
				}
				top.keys[k] = true
				top.atKey = false
				continue
			}
			top.atKey = true
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, &frame{keys: map[string]bool{}, object: d == '{', atKey: d == '{'})
		}
	}
}

// intOf is a number as json.Int reads it: an integer of at most 18
// characters, else 0.
func intOf(v any) (int64, bool) {
	s, ok := v.(json.Number)
	if !ok || len(s) > 18 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	return n, err == nil
}

func oneOf(n int64, m map[string]any, keys ...string) bool {
	present := false
	for _, k := range keys {
		if v, ok := m[k]; ok {
			present = true
			if x, _ := intOf(v); x == n {
				return true
			}
		}
	}
	return !present && n == 0
}

// FuzzObserve holds the tap to a full encoding/json decode of the same
// chunk: it reports only the id, model, usage, finish reasons and error the
// chunk holds, its usage cut leaves valid JSON with everything else, and it
// never changes the bytes it reads. On bytes that are not JSON it may learn
// less but never panics and never invents usage.
func FuzzObserve(f *testing.F) {
	for _, c := range fixtureChunks(f) {
		f.Add(c)
	}
	for _, s := range []string{
		`{"id":"abc`, `{"usage":{"prompt_tokens":99999999999999999999,"completion_tokens":-1}}`,
		`{"choices":[{"index":1023,"finish_reason":"x"},{"index":1025,"finish_reason":"stop"}]}`,
		`{"choices":[],"usage":{"input_tokens":1e3,"output_tokens":"7","total_tokens":0}}`,
		`{"error":{"code":null,"type":"\ud800"}}`, "{\"id\":\"\xff\xfe\",\"model\":\"\\u00e9\"}", `{"usage":null}`,
		`{"choices":[{"delta":{"content":"hi","tool_calls":[{}]},"text":"yo","index":-1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		var r call.Record
		c := Observe(&r, data)
		var content call.Content
		content.Capture, content.Max = true, 1<<10
		ObserveContent(&content, data)
		var est call.Record
		EstimateUsage(&est, data)
		if !bytes.Equal(data, orig) {
			t.Fatal("the tap changed the bytes it read")
		}
		if len(r.FinishReasons) > 1<<10+1 {
			t.Fatalf("%d finish reasons grown from a chunk", len(r.FinishReasons))
		}
		if r.UsageSource == call.UsageProvider && !bytes.Contains(data, []byte(`"usage"`)) {
			t.Fatalf("usage %+v from a chunk without one: %q", r.Usage, data)
		}
		if !json.Valid(data) || !utf8.Valid(data) || hasDuplicateKeys(data) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		top, isObject := doc.(map[string]any)
		if c.Valid != isObject {
			t.Fatalf("Valid = %v for %q", c.Valid, data)
		}
		if !isObject {
			return
		}
		checkStrings(t, &r, top)
		checkUsage(t, &r, c, top, data)
		checkChoices(t, &r, top)
		errObj, isErr := top["error"].(map[string]any)
		if c.Error != isErr {
			t.Fatalf("Error = %v for %q", c.Error, data)
		}
		if isErr {
			want := "upstream_error"
			if s, ok := errObj["type"].(string); ok {
				want = s
			}
			if s, ok := errObj["code"].(string); ok {
				want = s
			}
			if r.ErrorType != want {
				t.Fatalf("error type %q, want %q", r.ErrorType, want)
			}
		}
	})
}

func checkStrings(t *testing.T, r *call.Record, top map[string]any) {
	id, _ := top["id"].(string)
	model, _ := top["model"].(string)
	if string(r.ResponseID) != id || string(r.ResponseModel) != model {
		t.Fatalf("id %q model %q, the chunk says %q %q", r.ResponseID, r.ResponseModel, id, model)
	}
}

func checkUsage(t *testing.T, r *call.Record, c Chunk, top map[string]any, data []byte) {
	u, hasUsage := top["usage"].(map[string]any)
	if !hasUsage {
		if r.UsageSource != "" || r.Usage != (call.Usage{}) || c.UsageOnly {
			t.Fatalf("usage %+v (%q, only %v) from a chunk without a usage object", r.Usage, r.UsageSource, c.UsageOnly)
		}
	} else {
		got := r.Usage
		if r.UsageSource != call.UsageProvider || !oneOf(got.InputTokens, u, "prompt_tokens", "input_tokens") ||
			!oneOf(got.OutputTokens, u, "completion_tokens", "output_tokens") {
			t.Fatalf("usage %+v (%q) from %v", got, r.UsageSource, u)
		}
		if total, _ := intOf(u["total_tokens"]); got.TotalTokens != total && !(total == 0 && got.TotalTokens == got.InputTokens+got.OutputTokens) {
			t.Fatalf("total %d from %v", got.TotalTokens, u)
		}
		checkDetail(t, got.HasCached, got.CachedInputTokens, u, "cached_tokens", "prompt_tokens_details", "input_tokens_details")
		checkDetail(t, got.HasReasoning, got.ReasoningTokens, u, "reasoning_tokens", "completion_tokens_details", "output_tokens_details")
		choices, isArray := top["choices"].([]any)
		if c.UsageOnly != (isArray && len(choices) == 0) {
			t.Fatalf("UsageOnly = %v for %q", c.UsageOnly, data)
		}
	}
	_, hasKey := top["usage"]
	if !hasKey {
		if c.UsageStart != 0 || c.UsageEnd != 0 {
			t.Fatalf("usage span [%d,%d) without usage", c.UsageStart, c.UsageEnd)
		}
		return
	}
	// The relay cuts this span to drop the usage it asked for.
	cut := append(bytes.Clone(data[:c.UsageStart]), data[c.UsageEnd:]...)
	var rest map[string]any
	dec := json.NewDecoder(bytes.NewReader(cut))
	dec.UseNumber()
	if err := dec.Decode(&rest); err != nil {
		t.Fatalf("cutting usage from %q leaves %q: %v", data, cut, err)
	}
	want := map[string]any{}
	for k, v := range top {
		if k != "usage" {
			want[k] = v
		}
	}
	if !reflect.DeepEqual(rest, want) {
		t.Fatalf("cutting usage from %q changed the rest: %q", data, cut)
	}
}

func checkDetail(t *testing.T, has bool, n int64, u map[string]any, key string, parents ...string) {
	found := false
	for _, p := range parents {
		d, ok := u[p].(map[string]any)
		if !ok {
			continue
		}
		if v, ok := intOf(d[key]); ok {
			found = found || v == n
			if !has {
				t.Fatalf("%s.%s = %d not reported", p, key, v)
			}
		}
	}
	if has && !found {
		t.Fatalf("%s %d reported, the usage %v has no such count", key, n, u)
	}
}

func checkChoices(t *testing.T, r *call.Record, top map[string]any) {
	choices, _ := top["choices"].([]any)
	for i, reason := range r.FinishReasons {
		if reason == "" {
			continue
		}
		ok := slices.ContainsFunc(choices, func(c any) bool {
			m, _ := c.(map[string]any)
			idx, _ := intOf(m["index"])
			s, isString := m["finish_reason"].(string)
			return isString && idx == int64(i) && s == reason
		})
		if !ok {
			t.Fatalf("finish reason %q at %d: no choice says so in %v", reason, i, choices)
		}
	}
}
