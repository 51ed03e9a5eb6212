package console

import "testing"

func TestMillis_ReadableAtEveryScale(t *testing.T) {
	for ms, want := range map[float64]string{
		0.161109: "0.16 ms", 1.23: "1.2 ms", 95: "95.0 ms", 840.4: "840 ms", 2100: "2.10 s", 63_200: "1 min 3.2 s",
	} {
		if got := millis(ms); got != want {
			t.Errorf("millis(%v) = %q, want %q", ms, got, want)
		}
	}
}

func TestTokens_ThousandsSeparated(t *testing.T) {
	for n, want := range map[float64]string{0: "0", 999: "999", 1234: "1,234", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := tokens(n); got != want {
			t.Errorf("tokens(%v) = %q, want %q", n, got, want)
		}
	}
}

func TestIndentJSON_KeepsMemberOrderAndScalarsAsSent(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"object", `{"b":1,"a":"x\u00e9<"}`, "{\n  \"b\": 1,\n  \"a\": \"x\\u00e9<\"\n}"},
		{"nested", `{"a":[],"b":{},"c":[{"d":null}]}`, "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    {\n      \"d\": null\n    }\n  ]\n}"},
		{"not JSON", `{"city": Paris`, `{"city": Paris`},
		{"a scalar", `42`, `42`},
	} {
		if got := indentJSON([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: indentJSON(%s) =\n%s\nwant\n%s", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestTimelineStep_ARoundStepAtMostSixTicks(t *testing.T) {
	for total, want := range map[float64]float64{2100: 500, 100: 20, 7: 2, 0: 0, 14: 2.5} {
		if got := timelineStep(total, 6); got != want {
			t.Errorf("timelineStep(%v) = %v, want %v", total, got, want)
		}
	}
}

func TestShellQuote_SingleQuotesSurviveTheShell(t *testing.T) {
	if got, want := shellQuote(`it's "x" $HOME`), `'it'\''s "x" $HOME'`; got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
}
