package postgresexporter

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// FuzzAppendValue holds the hand-rolled jsonb writer to encoding/json: any
// string the checker lets through (valid UTF-8, no NUL) and any number,
// alone, in a slice or as a map key, is written as valid JSON that decodes
// to the same value (NaN and ±Inf as strings, bytes as base64).
func FuzzAppendValue(f *testing.F) {
	f.Add("gpt-4o", int64(1), 0.5, []byte{0, 0xff})
	f.Add("a\"b\\c\nd\te\r\x01\x1f\u2028</b>", int64(math.MinInt64), math.Inf(-1), []byte(nil))
	f.Add("héllo 🙂", int64(math.MaxInt64), 1e300, []byte("x"))
	f.Fuzz(func(t *testing.T, s string, n int64, x float64, b []byte) {
		if (checker{maxBytes: 1 << 20}).str(s) != "" {
			return // refused before it is written (dead-lettered)
		}
		m := pcommon.NewValueMap()
		m.Map().PutStr(s, s)
		sl := m.Map().PutEmptySlice("list")
		sl.AppendEmpty().SetInt(n)
		sl.AppendEmpty().SetDouble(x)
		sl.AppendEmpty().SetEmptyBytes().FromRaw(b)
		sl.AppendEmpty().SetStr(s)
		out := appendValue(nil, m)
		if !json.Valid(out) || !utf8.Valid(out) || strings.Contains(string(out), `\u0000`) {
			t.Fatalf("not JSON that jsonb takes: %q", out)
		}
		var got map[string]any
		dec := json.NewDecoder(strings.NewReader(string(out)))
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil {
			t.Fatal(err)
		}
		list, _ := got["list"].([]any)
		if s != "list" && got[s] != s {
			t.Fatalf("key/value %q came back as %v from %q", s, got, out)
		}
		if len(list) != 4 || list[0] != json.Number(strconv.FormatInt(n, 10)) || list[3] != s {
			t.Fatalf("list came back as %v from %q", list, out)
		}
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			if list[1] != strconv.FormatFloat(x, 'g', -1, 64) {
				t.Fatalf("%v came back as %v", x, list[1])
			}
		default:
			num, ok := list[1].(json.Number)
			back, err := strconv.ParseFloat(string(num), 64)
			if !ok || err != nil || back != x {
				t.Fatalf("%v came back as %v", x, list[1])
			}
		}
	})
}
