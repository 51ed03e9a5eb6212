package server

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/price"
)

// HeaderCost carries, on a unary answer, what the call cost in
// HeaderCostCurrency's units, as a plain decimal ("0.0075"): the exact
// amount loom.cost records. Both are absent when no cost is known (no
// usage, or no price entry for the call); a stream's cost is on its span
// only, since its headers go out before its usage is known.
const (
	HeaderCost         = "X-Loom-Cost"
	HeaderCostCurrency = "X-Loom-Cost-Currency"
)

// priceBook is the catalog the gateway prices calls with: the file's
// entries and the store's, in one immutable catalog swapped whole, so a
// call reads it without a lock.
type priceBook struct {
	mu          sync.Mutex // orders the swaps; reads take cat alone
	file, store []price.Entry
	cat         atomic.Pointer[price.Catalog]
}

// buildCatalog is the catalog of file and store entries together. A store
// entry that clashes with a file entry (same model, deployment and
// effective_from, or the same id) is left out, the file winning, and the
// catalog comes with an error naming it (wrapping price.ErrDuplicate): a
// store entry cannot be deleted once in force, so refusing the whole set
// would freeze the store's prices until the file changed. Anything else
// wrong returns no catalog.
func buildCatalog(file, store []price.Entry) (*price.Catalog, error) {
	cat, err := price.New(slices.Concat(file, store))
	if err == nil {
		return cat, nil
	}
	kept, dropped := withoutClashes(file, store)
	if len(dropped) == 0 {
		return nil, fmt.Errorf("price catalog (the file's %d entries, then the store's): %w", len(file), err)
	}
	cat, err = price.New(slices.Concat(file, kept))
	if err != nil {
		return nil, fmt.Errorf("price catalog (the file's %d entries, then the store's): %w", len(file), err)
	}
	return cat, fmt.Errorf("store prices %s left out: each clashes with an entry of the configuration file, which wins: %w",
		strings.Join(dropped, ", "), price.ErrDuplicate)
}

// withoutClashes splits store into the entries that clash with none of
// file's and the ids of those that do.
func withoutClashes(file, store []price.Entry) (kept []price.Entry, dropped []string) {
	type slot struct {
		model, deployment string
		sec               int64
		nsec              int
	}
	slotOf := func(e *price.Entry) slot {
		return slot{e.Model, e.Deployment, e.EffectiveFrom.Unix(), e.EffectiveFrom.Nanosecond()}
	}
	idOf := func(e *price.Entry) string {
		return cmp.Or(e.ID, price.EntryID(e.Model, e.Deployment, e.EffectiveFrom))
	}
	slots, ids := make(map[slot]bool, len(file)), make(map[string]bool, len(file))
	for i := range file {
		slots[slotOf(&file[i])], ids[idOf(&file[i])] = true, true
	}
	for i := range store {
		e := &store[i]
		if slots[slotOf(e)] || ids[idOf(e)] {
			dropped = append(dropped, strconv.Quote(idOf(e)))
			continue
		}
		kept = append(kept, *e)
	}
	return kept, dropped
}

// setFile serves cfg's entries with the store's current ones.
func (b *priceBook) setFile(cfg *config.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	commit, err := b.prepareLocked(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// prepareLocked builds the catalog of cfg's entries and the store's, and
// returns what swaps it in; b.mu must be held until then. Store entries
// that clash with the file's are left out without an error here: the
// store's next load names them (SetStorePrices).
func (b *priceBook) prepareLocked(cfg *config.Config) (commit func(), err error) {
	entries, err := cfg.PriceEntries()
	if err != nil {
		return nil, err
	}
	cat, err := buildCatalog(entries, b.store)
	if cat == nil {
		return nil, err
	}
	return func() {
		b.file = entries
		b.cat.Store(cat)
	}, nil
}

// SetStorePrices serves entries (the store's loom.prices) beside the
// file's. An entry that clashes with one of the file's is left out and
// named in the error, and the others are served; any other problem (which
// the store's own checks make unlikely) refuses the set whole, and the
// catalog served until now stays.
func (s *Server) SetStorePrices(entries []price.Entry) error {
	b := &s.prices
	b.mu.Lock()
	defer b.mu.Unlock()
	cat, err := buildCatalog(b.file, entries)
	if cat != nil {
		b.store = entries
		b.cat.Store(cat)
	}
	return err
}

// Prices is the catalog calls are priced with now. It is immutable; a
// later change swaps in another.
func (s *Server) Prices() *price.Catalog { return s.prices.cat.Load() }

// priceCall sets rec's cost, once its usage is known, from the entry in
// force when the call started for the tenant model that served it (the
// fallback's, when a fallback served) on its deployment, or else for the
// upstream model on that deployment (a catalog may name providers' models
// rather than each tenant's aliases). Nothing when no entry matches: no
// cost is not a cost of 0. It allocates nothing.
func (s *Server) priceCall(rec *call.Record) {
	if rec.PriceID != "" || rec.UsageSource == call.UsageNone {
		return
	}
	cat := s.prices.cat.Load()
	model := rec.Model
	if rec.FallbackModel != "" {
		model = rec.FallbackModel
	}
	e, ok := cat.Lookup(model, rec.Deployment, rec.Start)
	if !ok && rec.UpstreamModel != "" && rec.UpstreamModel != model {
		e, ok = cat.Lookup(rec.UpstreamModel, rec.Deployment, rec.Start)
	}
	if !ok {
		return
	}
	rec.Cost, rec.CostCurrency, rec.PriceID = int64(e.Cost(rec.Usage)), e.Currency, e.ID
}

// setCostHeaders prices rec and, when it has a cost, says so on the
// answer.
func (s *Server) setCostHeaders(h *fasthttp.ResponseHeader, rec *call.Record) {
	s.priceCall(rec)
	if rec.PriceID == "" {
		return
	}
	var buf [32]byte
	h.SetBytesV(HeaderCost, price.Amount(rec.Cost).AppendDecimal(buf[:0]))
	h.Set(HeaderCostCurrency, rec.CostCurrency)
}
