// Package price is Loom's price catalog: what a model's tokens cost per
// million, per deployment and from an effective date on, and the exact cost
// of a call's usage.
//
// Money is integers throughout: a Price is micro-units per million tokens
// and an Amount pico-units of the currency, so a token at price p costs
// exactly p Amount units and a cost is a sum of integer products, never
// rounded. Nothing on the way to an Amount may use floating point.
//
// A Catalog is immutable once built: the gateway swaps a new one in whole
// when prices change, and a call reads whichever it took, without a lock.
// Lookup and Cost run on every call and must not allocate.
package price

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
)

// DefaultCurrency is an entry's currency when it names none.
const DefaultCurrency = "USD"

// Entry is one price of a model, from EffectiveFrom on. Entries are never
// edited: a new price is a new entry with a later EffectiveFrom, so a call
// keeps the price that was in force when it started.
//
// CachedInput, CacheWrite and Reasoning left zero are "not set": cached and
// cache-write tokens then cost Input, reasoning tokens Output.
type Entry struct {
	// ID names the entry on every span it priced (loom.cost.price_id).
	// New derives one when it is empty (see EntryID).
	ID    string `json:"id"`
	Model string `json:"model"`
	// Deployment, when set, restricts the entry to calls served by that
	// deployment; such an entry beats one without (see Catalog.Lookup).
	Deployment    string    `json:"deployment,omitempty"`
	Currency      string    `json:"currency"`
	EffectiveFrom time.Time `json:"effective_from"`
	Input         Price     `json:"input"`
	CachedInput   Price     `json:"cached_input,omitempty"`
	CacheWrite    Price     `json:"cache_write,omitempty"`
	Output        Price     `json:"output"`
	Reasoning     Price     `json:"reasoning,omitempty"`
}

// EntryID is the id New gives an entry that has none: model, "@deployment"
// when set, and the effective time in RFC 3339 UTC, as in
// "gpt-4o@azure-east:2025-01-01T00:00:00Z". It is unique wherever
// model+deployment+effective_from is.
func EntryID(model, deployment string, from time.Time) string {
	id := model
	if deployment != "" {
		id += "@" + deployment
	}
	return id + ":" + from.UTC().Format(time.RFC3339)
}

// Cost is what u costs at e's prices, exactly, in e.Currency:
//
//	(input − cached − cache_creation) × Input
//	+ cached × CachedInput + cache_creation × CacheWrite
//	+ (output − reasoning) × Output + reasoning × Reasoning
//
// Input tokens include the cache's reads and writes (the GenAI conventions'
// gen_ai.usage.input_tokens) and output tokens include reasoning (OpenAI's
// completion_tokens), so each is counted once, at its own price. Each
// term's token count is clamped at 0, so no usage (however malformed)
// makes a cost negative; a product past an Amount's range saturates.
func (e *Entry) Cost(u call.Usage) Amount {
	cached, creation, reasoning := max(u.CachedInputTokens, 0), max(u.CacheCreationInputTokens, 0), max(u.ReasoningTokens, 0)
	// One subtraction at a time, each of two non-negative numbers: a
	// hostile count cannot wrap around into a large positive one.
	uncached := max(max(u.InputTokens, 0)-cached, 0)
	uncached = max(uncached-creation, 0)
	var a Amount
	a = addSat(a, mulSat(uncached, e.Input))
	a = addSat(a, mulSat(cached, e.cachedInput()))
	a = addSat(a, mulSat(creation, e.cacheWrite()))
	a = addSat(a, mulSat(max(u.OutputTokens, 0)-reasoning, e.Output))
	return addSat(a, mulSat(reasoning, e.reasoning()))
}

func (e *Entry) cachedInput() Price { return cmp.Or(e.CachedInput, e.Input) }
func (e *Entry) cacheWrite() Price  { return cmp.Or(e.CacheWrite, e.Input) }
func (e *Entry) reasoning() Price   { return cmp.Or(e.Reasoning, e.Output) }

// mulSat is tokens × p as an Amount; tokens below 0 count as 0, and a
// product past MaxInt64 is MaxInt64.
func mulSat(tokens int64, p Price) Amount {
	if tokens <= 0 || p <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(p))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return Amount(lo)
}

// addSat adds two non-negative amounts, saturating at MaxInt64.
func addSat(a, b Amount) Amount {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}

// Catalog is a validated, immutable set of entries.
type Catalog struct {
	entries []Entry
	models  map[string]*modelPrices
}

// modelPrices are one model's entries, each list ordered by EffectiveFrom,
// latest first.
type modelPrices struct {
	generic    []*Entry
	deployment map[string][]*Entry
}

// Errors of New, each wrapped in a FieldError.
var (
	ErrInvalid   = errors.New("invalid price entry")
	ErrDuplicate = errors.New("duplicate price entry")
)

// FieldError is one problem New found in one entry. It reads
// "prices[2].currency: must be three capital letters ...".
type FieldError struct {
	Index int    // the entry's position in New's argument
	Field string // "model", "currency", "input"...; "" for the entry as a whole
	Msg   string
	Err   error // ErrInvalid or ErrDuplicate
}

func (e *FieldError) Error() string {
	f := fmt.Sprintf("prices[%d]", e.Index)
	if e.Field != "" {
		f += "." + e.Field
	}
	return f + ": " + e.Msg
}

func (e *FieldError) Unwrap() error { return e.Err }

// New validates entries and builds a catalog of them. Every problem is
// reported, each a *FieldError naming its entry by index and its field: a
// model is required, a currency is three letters A–Z ("USD" when empty),
// prices are non-negative and at most MaxPrice, an effective date is
// required, and no two entries share model+deployment+effective_from or an
// id. The entries are copied, ids filled in and currencies defaulted.
func New(entries []Entry) (*Catalog, error) {
	c := &Catalog{entries: slices.Clone(entries), models: map[string]*modelPrices{}}
	var errs []error
	type slot struct {
		model, deployment string
		sec               int64
		nsec              int
	}
	seen := make(map[slot]int, len(entries))
	ids := make(map[string]int, len(entries))
	for i := range c.entries {
		e := &c.entries[i]
		bad := func(field, format string, args ...any) {
			errs = append(errs, &FieldError{Index: i, Field: field, Msg: fmt.Sprintf(format, args...), Err: ErrInvalid})
		}
		if e.Currency == "" {
			e.Currency = DefaultCurrency
		}
		if e.Model == "" {
			bad("model", "is required")
		}
		if !isCurrency(e.Currency) {
			bad("currency", "must be three capital letters (ISO 4217, like USD), got %q", clip(e.Currency))
		}
		if e.EffectiveFrom.IsZero() {
			bad("effective_from", "is required")
		}
		for _, f := range []struct {
			name string
			p    Price
		}{
			{"input", e.Input}, {"cached_input", e.CachedInput}, {"cache_write", e.CacheWrite},
			{"output", e.Output}, {"reasoning", e.Reasoning},
		} {
			switch {
			case f.p < 0:
				bad(f.name, "must not be negative")
			case f.p > MaxPrice:
				bad(f.name, "must be at most %s", MaxPrice)
			}
		}
		if e.ID == "" {
			e.ID = EntryID(e.Model, e.Deployment, e.EffectiveFrom)
		}
		k := slot{e.Model, e.Deployment, e.EffectiveFrom.Unix(), e.EffectiveFrom.Nanosecond()}
		if j, ok := seen[k]; ok {
			errs = append(errs, &FieldError{Index: i, Err: ErrDuplicate,
				Msg: fmt.Sprintf("same model, deployment and effective_from as prices[%d] (a new price needs a later effective_from)", j)})
		} else {
			seen[k] = i
		}
		if j, ok := ids[e.ID]; ok {
			errs = append(errs, &FieldError{Index: i, Field: "id", Err: ErrDuplicate,
				Msg: fmt.Sprintf("%q is also the id of prices[%d]", clip(e.ID), j)})
		} else {
			ids[e.ID] = i
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i := range c.entries {
		e := &c.entries[i]
		m := c.models[e.Model]
		if m == nil {
			m = &modelPrices{}
			c.models[e.Model] = m
		}
		if e.Deployment == "" {
			m.generic = append(m.generic, e)
		} else {
			if m.deployment == nil {
				m.deployment = map[string][]*Entry{}
			}
			m.deployment[e.Deployment] = append(m.deployment[e.Deployment], e)
		}
	}
	latestFirst := func(a, b *Entry) int { return b.EffectiveFrom.Compare(a.EffectiveFrom) }
	for _, m := range c.models {
		slices.SortFunc(m.generic, latestFirst)
		for _, l := range m.deployment {
			slices.SortFunc(l, latestFirst)
		}
	}
	return c, nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := range 3 {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Lookup is the entry that prices a call of model served by deployment and
// started at: among the entries naming that deployment, the one with the
// latest EffectiveFrom not after at; when none names it (or none of those
// is in force yet), the same among the entries naming no deployment. A
// nil catalog has no entries. It allocates nothing.
func (c *Catalog) Lookup(model, deployment string, at time.Time) (*Entry, bool) {
	if c == nil {
		return nil, false
	}
	m := c.models[model]
	if m == nil {
		return nil, false
	}
	if deployment != "" && m.deployment != nil {
		if e := inForce(m.deployment[deployment], at); e != nil {
			return e, true
		}
	}
	if e := inForce(m.generic, at); e != nil {
		return e, true
	}
	return nil, false
}

// inForce is the first entry of l (latest first) in force at at.
func inForce(l []*Entry, at time.Time) *Entry {
	for _, e := range l {
		if !e.EffectiveFrom.After(at) {
			return e
		}
	}
	return nil
}

// Estimate is the most a call can cost before its usage is known, for a
// budget to reserve: inputTokens at the Input price and maxOutput at the
// higher of Output and Reasoning (cached input is never dearer than input
// in any price list Loom knows; a cache write can be, and is not assumed).
// False when no entry prices the call.
func (c *Catalog) Estimate(model, deployment string, at time.Time, inputTokens, maxOutput int64) (Amount, *Entry, bool) {
	e, ok := c.Lookup(model, deployment, at)
	if !ok {
		return 0, nil, false
	}
	return addSat(mulSat(inputTokens, e.Input), mulSat(maxOutput, max(e.Output, e.reasoning()))), e, true
}

// Entries returns a copy of the catalog's entries, in the order New got
// them (ids filled in, currencies defaulted).
func (c *Catalog) Entries() []Entry {
	if c == nil {
		return nil
	}
	return slices.Clone(c.entries)
}

// Len is the number of entries.
func (c *Catalog) Len() int {
	if c == nil {
		return 0
	}
	return len(c.entries)
}
