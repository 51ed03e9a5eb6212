package config

import (
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/price"
)

const priceDeployments = `
deployments:
  - {name: oa, provider: openai, base_url: "https://api.openai.com/v1", api_key: sk-x}
`

func TestParse_Prices_QuotedOrBareDecimalsAndBothDateForms(t *testing.T) {
	c, err := Parse([]byte(priceDeployments + `
prices:
  - {model: gpt-4o, effective_from: 2025-01-01, input: 2.50, cached_input: "1.25", output: 10}
  - {id: o3-east, model: o3, deployment: oa, currency: EUR, effective_from: "2025-06-01T12:00:00+02:00",
     input: "0.0375", cache_write: 3.75, output: "8", reasoning: 12}
`))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := c.PriceEntries()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := price.New(entries)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := cat.Lookup("gpt-4o", "oa", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if !ok || e.Input != 2_500_000 || e.CachedInput != 1_250_000 || e.Output != 10_000_000 || e.Currency != "USD" ||
		e.ID != "gpt-4o:2025-01-01T00:00:00Z" {
		t.Fatalf("gpt-4o entry = %+v, %v", e, ok)
	}
	e, ok = cat.Lookup("o3", "oa", time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC))
	if !ok || e.ID != "o3-east" || e.Input != 37_500 || e.CacheWrite != 3_750_000 || e.Reasoning != 12_000_000 || e.Currency != "EUR" {
		t.Fatalf("o3 entry = %+v, %v", e, ok)
	}
}

func TestParse_Prices_ProblemsNamedByField(t *testing.T) {
	_, err := Parse([]byte(priceDeployments + `
prices:
  - {model: a, effective_from: yesterday, input: "1.5", output: "-2"}
  - {model: b, effective_from: 2025-01-01, input: 1e3, output: "0.00000001"}
  - {model: c, effective_from: 2025-01-01}
  - {effective_from: 2025-01-01, input: 1, output: 1, currency: dollars}
  - {model: d, effective_from: 2025-01-01, input: 1, output: 1}
  - {model: d, effective_from: "2025-01-01T00:00:00Z", input: 2, output: 2}
`))
	if err == nil {
		t.Fatal("bad prices accepted")
	}
	for _, want := range []string{
		"prices[0].effective_from: must be RFC 3339", "prices[0].output:", "prices[1].input:", "prices[1].output:",
		"prices[2].input: is required", "prices[2].output: is required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	// Once every field parses, the catalog's own checks speak.
	_, err = Parse([]byte(priceDeployments + `
prices:
  - {effective_from: 2025-01-01, input: 1, output: 1, currency: dollars}
  - {model: d, effective_from: 2025-01-01, input: 1, output: 1}
  - {model: d, effective_from: "2025-01-01T00:00:00Z", input: 2, output: 2}
`))
	for _, want := range []string{"prices[0].model: is required", "prices[0].currency:", "prices[2]: same model, deployment and effective_from as prices[1]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}
