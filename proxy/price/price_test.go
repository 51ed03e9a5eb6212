package price

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
)

func mustPrice(t testing.TB, s string) Price {
	t.Helper()
	p, err := ParsePrice(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestParsePrice_ExactDecimals(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Price
		str  string
	}{
		{"2.50", 2_500_000, "2.5"},
		{"0.0375", 37_500, "0.0375"},
		{"3", 3_000_000, "3"},
		{"0", 0, "0"},
		{"0.000001", 1, "0.000001"},
		{"15.000000000", 15_000_000, "15"}, // zeros past six places change nothing
		{"1000000", MaxPrice, "1000000"},
	} {
		got, err := ParsePrice(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParsePrice(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.str {
			t.Errorf("Price(%d).String() = %q, want %q", got, s, tc.str)
		}
	}
}

func TestParsePrice_RefusesWhatIsNotAPlainDecimal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrSyntax}, {"abc", ErrSyntax}, {"1.", ErrSyntax}, {".5", ErrSyntax}, {"1e3", ErrSyntax},
		{"+1", ErrSyntax}, {" 1", ErrSyntax}, {"1,5", ErrSyntax}, {"1.2.3", ErrSyntax}, {"NaN", ErrSyntax},
		{"-1", ErrNegative}, {"0.0000001", ErrPlaces}, {"1000000.000001", ErrRange},
		{"99999999999999999999999", ErrRange},
	} {
		if _, err := ParsePrice(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("ParsePrice(%q) error = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestPrice_UnmarshalJSON_StringOrNumberExactly(t *testing.T) {
	for _, in := range []string{`"0.0375"`, `0.0375`} {
		var p Price
		if err := p.UnmarshalJSON([]byte(in)); err != nil || p != 37_500 {
			t.Errorf("UnmarshalJSON(%s) = %d, %v", in, p, err)
		}
	}
	p := Price(7)
	if err := p.UnmarshalJSON([]byte("null")); err != nil || p != 7 {
		t.Errorf("null changed the price: %d, %v", p, err)
	}
	if err := p.UnmarshalJSON([]byte(`2.5e0`)); err == nil {
		t.Error("an exponent was accepted")
	}
}

func TestAmount_String_PlainDecimalTrimmed(t *testing.T) {
	for _, tc := range []struct {
		a    Amount
		want string
	}{
		{0, "0.00"},
		{123_450_000, "0.00012345"},
		{1_500_000_000_000, "1.50"},
		{2 * AmountScale, "2.00"},
		{1, "0.000000000001"},
		{-1_250_000_000_000, "-1.25"},
		{math.MaxInt64, "9223372.036854775807"},
		{math.MinInt64, "-9223372.036854775808"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("Amount(%d).String() = %q, want %q", int64(tc.a), got, tc.want)
		}
		if tc.a != math.MinInt64 {
			back, err := ParseAmount(tc.a.String())
			if err != nil || back != tc.a {
				t.Errorf("ParseAmount(%q) = %d, %v", tc.a.String(), back, err)
			}
		}
	}
	if f := Amount(1_500_000_000_000).Float64(); f != 1.5 {
		t.Errorf("Float64 = %v, want 1.5", f)
	}
	if f := Amount(123_450_000).Float64(); f != 0.00012345 {
		t.Errorf("Float64 = %v, want 0.00012345", f)
	}
	// The shortest decimal of the float is the exact amount: what the
	// exporter stores in the numeric column.
	for _, a := range []Amount{1, 7_500_000_000, 123_456_789_012, 999_999_999_999_999, 40, 2_225_000_000} {
		if got := strconv.FormatFloat(a.Float64(), 'f', -1, 64); got != strings.TrimRight(strings.TrimRight(a.String(), "0"), ".") {
			t.Errorf("Amount %s: float's shortest decimal is %s", a, got)
		}
	}
}

// readmeEntry's prices per million tokens: input 2.50, cached input 1.25,
// cache write 3.75, output 10, reasoning unset (so it costs output's 10).
func readmeEntry(t testing.TB) *Entry {
	return &Entry{ID: "e", Model: "m", Currency: "USD", Input: mustPrice(t, "2.50"), CachedInput: mustPrice(t, "1.25"),
		CacheWrite: mustPrice(t, "3.75"), Output: mustPrice(t, "10")}
}

func TestEntry_Cost_ExactAmounts(t *testing.T) {
	e := readmeEntry(t)
	for _, tc := range []struct {
		name string
		e    *Entry
		u    call.Usage
		want string
	}{
		{"plain", e, call.Usage{InputTokens: 1000, OutputTokens: 500}, "0.0075"},
		{"one token of each", e, call.Usage{InputTokens: 1, OutputTokens: 1}, "0.0000125"},
		// 1000 input of which 400 cache reads and 100 cache writes, 10
		// output: 500 × 2.50 + 400 × 1.25 + 100 × 3.75 + 10 × 10 = 2225
		// per million tokens.
		{"cached and cache write", e, call.Usage{InputTokens: 1000, CachedInputTokens: 400, CacheCreationInputTokens: 100,
			OutputTokens: 10, HasCached: true, HasCacheCreation: true}, "0.002225"},
		// Reasoning is inside output: 300 output of which 200 reasoning,
		// all at output's price when reasoning is unset.
		{"reasoning unset costs output", e, call.Usage{InputTokens: 0, OutputTokens: 300, ReasoningTokens: 200, HasReasoning: true}, "0.003"},
		{"reasoning priced apart", &Entry{Input: mustPrice(t, "1"), Output: mustPrice(t, "4"), Reasoning: mustPrice(t, "8")},
			call.Usage{InputTokens: 10, OutputTokens: 300, ReasoningTokens: 200, HasReasoning: true}, "0.00201"},
		{"cached unset costs input", &Entry{Input: mustPrice(t, "0.15"), Output: mustPrice(t, "0.6")},
			call.Usage{InputTokens: 2000, CachedInputTokens: 1500, OutputTokens: 100}, "0.00036"},
		{"sub-micro prices stay exact", &Entry{Input: mustPrice(t, "0.000001"), Output: mustPrice(t, "0.000003")},
			call.Usage{InputTokens: 7, OutputTokens: 11}, "0.00000000004"},
		{"more cached than input is clamped", e, call.Usage{InputTokens: 10, CachedInputTokens: 50, OutputTokens: 0}, "0.0000625"},
		{"negative counts cost nothing", e, call.Usage{InputTokens: -5, OutputTokens: -1, CachedInputTokens: -3, ReasoningTokens: -9}, "0.00"},
		{"more reasoning than output", e, call.Usage{OutputTokens: 10, ReasoningTokens: 20}, "0.0002"},
		{"zero usage", e, call.Usage{}, "0.00"},
	} {
		if got := tc.e.Cost(tc.u).String(); got != tc.want {
			t.Errorf("%s: cost = %s, want %s", tc.name, got, tc.want)
		}
	}
	sub := &Entry{Input: 1, Output: 3}
	if got := sub.Cost(call.Usage{InputTokens: 7, OutputTokens: 11}); got != 40 {
		t.Errorf("sub-micro cost = %d pico, want 40", got)
	}
}

func TestEntry_Cost_HugeUsageSaturates(t *testing.T) {
	e := &Entry{Input: MaxPrice, Output: MaxPrice}
	got := e.Cost(call.Usage{InputTokens: math.MaxInt64, OutputTokens: math.MaxInt64, CachedInputTokens: math.MaxInt64})
	if got != math.MaxInt64 {
		t.Fatalf("cost = %d, want saturation at MaxInt64", got)
	}
	if got := e.Cost(call.Usage{InputTokens: math.MinInt64, CachedInputTokens: math.MaxInt64}); got < 0 {
		t.Fatalf("cost = %d, negative", got)
	}
}

func testCatalog(t testing.TB) *Catalog {
	c, err := New([]Entry{
		{Model: "gpt-4o", EffectiveFrom: day("2025-01-01"), Input: mustPrice(t, "5"), Output: mustPrice(t, "15")},
		{Model: "gpt-4o", EffectiveFrom: day("2025-06-01"), Input: mustPrice(t, "2.50"), Output: mustPrice(t, "10")},
		{Model: "gpt-4o", Deployment: "azure-east", EffectiveFrom: day("2025-03-01"), Input: mustPrice(t, "2.75"), Output: mustPrice(t, "11")},
		{ID: "claude-v1", Model: "claude", Currency: "EUR", EffectiveFrom: day("2024-01-01"), Input: mustPrice(t, "3"), Output: mustPrice(t, "15")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCatalog_Lookup_LatestEffectiveEntryDeploymentFirst(t *testing.T) {
	c := testCatalog(t)
	for _, tc := range []struct {
		name, model, deployment, at string
		wantID                      string // "" for no entry
	}{
		{"before any price", "gpt-4o", "openai", "2024-12-31", ""},
		{"first generic", "gpt-4o", "openai", "2025-01-01", "gpt-4o:2025-01-01T00:00:00Z"},
		{"later generic takes over", "gpt-4o", "openai", "2025-07-01", "gpt-4o:2025-06-01T00:00:00Z"},
		{"deployment not yet priced falls back", "gpt-4o", "azure-east", "2025-02-01", "gpt-4o:2025-01-01T00:00:00Z"},
		{"deployment beats a later generic", "gpt-4o", "azure-east", "2025-07-01", "gpt-4o@azure-east:2025-03-01T00:00:00Z"},
		{"no deployment given", "gpt-4o", "", "2025-07-01", "gpt-4o:2025-06-01T00:00:00Z"},
		{"given id kept", "claude", "anthropic", "2026-01-01", "claude-v1"},
		{"unknown model", "gpt-5", "openai", "2026-01-01", ""},
	} {
		e, ok := c.Lookup(tc.model, tc.deployment, day(tc.at))
		switch {
		case tc.wantID == "" && ok:
			t.Errorf("%s: got %s, want none", tc.name, e.ID)
		case tc.wantID != "" && (!ok || e.ID != tc.wantID):
			t.Errorf("%s: got %v %v, want %s", tc.name, e, ok, tc.wantID)
		}
	}
	if e, _ := c.Lookup("claude", "", day("2026-01-01")); e.Currency != "EUR" {
		t.Errorf("currency = %q", e.Currency)
	}
	if e, _ := c.Lookup("gpt-4o", "", day("2025-01-01")); e.Currency != "USD" {
		t.Errorf("default currency = %q", e.Currency)
	}
	var nilCat *Catalog
	if _, ok := nilCat.Lookup("gpt-4o", "", time.Now()); ok {
		t.Error("a nil catalog priced a call")
	}
}

func TestCatalog_Lookup_EffectiveInstantIsInclusive(t *testing.T) {
	c := testCatalog(t)
	from := day("2025-06-01")
	if e, _ := c.Lookup("gpt-4o", "", from); e.Input != mustPrice(t, "2.50") {
		t.Errorf("at the effective instant: input %s", e.Input)
	}
	if e, _ := c.Lookup("gpt-4o", "", from.Add(-time.Nanosecond)); e.Input != mustPrice(t, "5") {
		t.Errorf("a nanosecond before: input %s", e.Input)
	}
}

func TestCatalog_Estimate_InputAndMaxOutputAtDearestOutput(t *testing.T) {
	c, err := New([]Entry{{Model: "o3", EffectiveFrom: day("2025-01-01"), Input: mustPrice(t, "2"), Output: mustPrice(t, "8"), Reasoning: mustPrice(t, "12")}})
	if err != nil {
		t.Fatal(err)
	}
	a, e, ok := c.Estimate("o3", "x", day("2025-02-01"), 1000, 500)
	if !ok || e.Model != "o3" || a.String() != "0.008" { // 1000 × 2 + 500 × 12 per million
		t.Fatalf("Estimate = %s %v %v", a, e, ok)
	}
	if _, _, ok := c.Estimate("gpt-5", "", day("2025-02-01"), 1, 1); ok {
		t.Fatal("an unknown model was estimated")
	}
}

func TestNew_ReportsEveryProblemNamingItsEntry(t *testing.T) {
	_, err := New([]Entry{
		{Model: "", EffectiveFrom: day("2025-01-01")},
		{Model: "m", Currency: "usd", EffectiveFrom: day("2025-01-01"), Input: -1},
		{Model: "m", Currency: "USD", EffectiveFrom: day("2025-01-01")},
		{Model: "m2"},
		{ID: "x", Model: "m3", EffectiveFrom: day("2025-01-01")},
		{ID: "x", Model: "m4", EffectiveFrom: day("2025-01-01"), Output: MaxPrice + 1},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"prices[0].model: is required",
		`prices[1].currency: must be three capital letters`,
		"prices[1].input: must not be negative",
		"prices[2]: same model, deployment and effective_from as prices[1]",
		"prices[3].effective_from: is required",
		`prices[5].id: "x" is also the id of prices[4]`,
		"prices[5].output: must be at most 1000000",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrDuplicate) {
		t.Errorf("error does not wrap ErrInvalid and ErrDuplicate: %v", err)
	}
}

func TestNew_SameInstantInAnotherZoneIsADuplicate(t *testing.T) {
	utc := day("2025-01-01")
	_, err := New([]Entry{
		{Model: "m", EffectiveFrom: utc},
		{ID: "other", Model: "m", EffectiveFrom: utc.In(time.FixedZone("X", 3600))},
	})
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("err = %v, want ErrDuplicate", err)
	}
}

func TestLookupAndCost_AllocateNothing(t *testing.T) {
	c := testCatalog(t)
	at := day("2025-07-01")
	u := call.Usage{InputTokens: 1200, CachedInputTokens: 200, OutputTokens: 300, ReasoningTokens: 100}
	var sink Amount
	if n := testing.AllocsPerRun(1000, func() {
		e, _ := c.Lookup("gpt-4o", "azure-east", at)
		sink += e.Cost(u)
	}); n != 0 {
		t.Fatalf("Lookup+Cost allocate %.1f times, want 0", n)
	}
	var buf [32]byte
	if n := testing.AllocsPerRun(1000, func() { _ = sink.AppendDecimal(buf[:0]) }); n != 0 {
		t.Fatalf("AppendDecimal allocates %.1f times, want 0", n)
	}
}

func BenchmarkLookupCost(b *testing.B) {
	c := testCatalog(b)
	at := day("2025-07-01")
	u := call.Usage{InputTokens: 1200, CachedInputTokens: 200, OutputTokens: 300, ReasoningTokens: 100}
	b.Run("deployment", func(b *testing.B) {
		b.ReportAllocs()
		var sink Amount
		for b.Loop() {
			e, _ := c.Lookup("gpt-4o", "azure-east", at)
			sink += e.Cost(u)
		}
	})
	b.Run("generic", func(b *testing.B) {
		b.ReportAllocs()
		var sink Amount
		for b.Loop() {
			e, _ := c.Lookup("gpt-4o", "openai", at)
			sink += e.Cost(u)
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Lookup("unknown", "openai", at)
		}
	})
	b.Run("append-decimal", func(b *testing.B) {
		b.ReportAllocs()
		var buf [32]byte
		a := Amount(123_456_789_000)
		for b.Loop() {
			_ = a.AppendDecimal(buf[:0])
		}
	})
}

// FuzzParsePrice checks the parser against math/big: whatever it accepts
// is exactly the decimal written, scaled by a million, and prints back to
// a string that parses to the same price.
func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{"2.50", "0.0375", "3", "0", "1000000", "0.0000001", "-1", "1e3", ".5", "1.", "", "00012.340000000"} {
		f.Add(s)
	}
	million := big.NewRat(PriceScale, 1)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrice(s)
		if err != nil {
			return
		}
		if p < 0 || p > MaxPrice {
			t.Fatalf("ParsePrice(%q) = %d, out of range", s, p)
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("ParsePrice accepted %q, which is no number", s)
		}
		r.Mul(r, million)
		if !r.IsInt() || r.Num().Int64() != int64(p) {
			t.Fatalf("ParsePrice(%q) = %d, want %s", s, p, r.RatString())
		}
		back, err := ParsePrice(p.String())
		if err != nil || back != p {
			t.Fatalf("String %q does not parse back to %d: %d, %v", p.String(), p, back, err)
		}
	})
}
