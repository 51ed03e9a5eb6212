package postgresexporter

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestAppendValue_DecodesToTheValue(t *testing.T) {
	tests := []struct {
		name string
		raw  any
		want any // as encoding/json decodes it
	}{
		{name: "plain string", raw: "gpt-4o", want: "gpt-4o"},
		{name: "escapes", raw: "a\"b\\c\nd\te\r\x01\x1f", want: "a\"b\\c\nd\te\r\x01\x1f"},
		{name: "unicode", raw: "héllo → 世界 🙂 \u2028", want: "héllo → 世界 🙂 \u2028"},
		{name: "html stays as is", raw: "<b>&</b>", want: "<b>&</b>"},
		{name: "int", raw: int64(-42), want: -42.0},
		{name: "double", raw: 0.000125, want: 0.000125},
		{name: "huge double", raw: 1e300, want: 1e300},
		{name: "NaN is a string", raw: math.NaN(), want: "NaN"},
		{name: "Inf is a string", raw: math.Inf(-1), want: "-Inf"},
		{name: "bool", raw: true, want: true},
		{name: "bytes are base64", raw: []byte{0, 1, 0xff}, want: "AAH/"},
		{name: "slice", raw: []any{"stop", int64(1), nil}, want: []any{"stop", 1.0, nil}},
		{name: "map", raw: map[string]any{"k\"ey": map[string]any{"n": int64(1)}}, want: map[string]any{"k\"ey": map[string]any{"n": 1.0}}},
		{name: "empty map", raw: map[string]any{}, want: map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := pcommon.NewValueEmpty()
			if err := v.FromRaw(tt.raw); err != nil {
				t.Fatal(err)
			}
			out := appendValue(nil, v)
			var got any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s is not JSON: %v", out, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s decodes to %#v, want %#v", out, got, tt.want)
			}
		})
	}
}

func TestExactInt_LenientButExact(t *testing.T) {
	tests := []struct {
		name   string
		raw    any
		want   int64
		wantOK bool
	}{
		{name: "int", raw: int64(7), want: 7, wantOK: true},
		{name: "integral double", raw: 200.0, want: 200, wantOK: true},
		{name: "fractional double", raw: 3.5},
		{name: "double past int64", raw: 1e19},
		{name: "NaN", raw: math.NaN()},
		{name: "decimal string", raw: "42", want: 42, wantOK: true},
		{name: "not a number", raw: "42x"},
		{name: "bool", raw: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := pcommon.NewValueEmpty()
			if err := v.FromRaw(tt.raw); err != nil {
				t.Fatal(err)
			}
			got, ok := exactInt(v, math.MinInt64, math.MaxInt64)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Errorf("exactInt(%v) = %d, %v; want %d, %v", tt.raw, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	v := pcommon.NewValueInt(1 << 40)
	if _, ok := exactInt(v, math.MinInt32, math.MaxInt32); ok {
		t.Error("2^40 fits an int4 column")
	}
}

// jsonb refuses the escape \u0000 even in valid JSON: such content is kept
// as a JSON string rather than lost to dead letters.
func TestContentJSON_KeepsWhatJSONBCannotTakeAsAString(t *testing.T) {
	for in, want := range map[string]string{
		`[{"role":"user"}]`: `[{"role":"user"}]`,
		`not JSON`:          `"not JSON"`,
		`["a\u0000b"]`:      `"[\"a\\u0000b\"]"`,
	} {
		if got := string(contentJSON(pcommon.NewValueStr(in))); got != want {
			t.Errorf("contentJSON(%s) = %s, want %s", in, got, want)
		}
	}
}
