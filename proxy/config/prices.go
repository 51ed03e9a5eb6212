package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/loom-gateway/loom/proxy/price"
)

// Price is one entry of the price catalog as the file writes it (see
// proxy/price.Entry): prices per million tokens as plain decimals, quoted
// or not ("2.50", 0.0375), and effective_from as RFC 3339 or YYYY-MM-DD
// (midnight UTC). Entries are never edited in place: a new price is a new
// entry with a later effective_from, so calls keep the price they started
// under.
type Price struct {
	ID            string `yaml:"id"`
	Model         string `yaml:"model"`
	Deployment    string `yaml:"deployment"`
	Currency      string `yaml:"currency"`
	EffectiveFrom string `yaml:"effective_from"`
	Input         string `yaml:"input"`
	CachedInput   string `yaml:"cached_input"`
	CacheWrite    string `yaml:"cache_write"`
	Output        string `yaml:"output"`
	Reasoning     string `yaml:"reasoning"`
}

// ParseEffective reads an effective date: RFC 3339, or YYYY-MM-DD for
// midnight UTC.
func ParseEffective(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be RFC 3339 (2025-01-01T00:00:00Z) or YYYY-MM-DD, got %q", s)
	}
	return t, nil
}

// PriceEntries turns the file's prices into catalog entries. Its errors
// name each bad field ("prices[1].input: ..."); Validate reports them, and
// those of price.New.
func (c *Config) PriceEntries() ([]price.Entry, error) {
	out := make([]price.Entry, len(c.Prices))
	var errs []error
	for i, p := range c.Prices {
		f := fmt.Sprintf("prices[%d]", i)
		e := price.Entry{ID: p.ID, Model: p.Model, Deployment: p.Deployment, Currency: p.Currency}
		if p.EffectiveFrom == "" {
			errs = append(errs, fmt.Errorf("%s.effective_from: is required", f))
		} else if t, err := ParseEffective(p.EffectiveFrom); err != nil {
			errs = append(errs, fmt.Errorf("%s.effective_from: %w", f, err))
		} else {
			e.EffectiveFrom = t
		}
		for _, fp := range []struct {
			name     string
			text     string
			dst      *price.Price
			required bool
		}{
			{"input", p.Input, &e.Input, true}, {"cached_input", p.CachedInput, &e.CachedInput, false},
			{"cache_write", p.CacheWrite, &e.CacheWrite, false}, {"output", p.Output, &e.Output, true},
			{"reasoning", p.Reasoning, &e.Reasoning, false},
		} {
			if fp.text == "" {
				if fp.required {
					errs = append(errs, fmt.Errorf("%s.%s: is required (per million tokens, like \"2.50\"; \"0\" for free)", f, fp.name))
				}
				continue
			}
			v, err := price.ParsePrice(fp.text)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.%s: %w", f, fp.name, err))
				continue
			}
			*fp.dst = v
		}
		out[i] = e
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// validatePrices reports every problem of the file's prices: a field that
// does not parse, then what price.New refuses (a missing model, a bad
// currency, two entries for one model, deployment and date).
func (c *Config) validatePrices() error {
	entries, err := c.PriceEntries()
	if err != nil {
		return err
	}
	_, err = price.New(entries)
	return err
}
