package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/store"
)

// priceJSON is a price entry of the store. Prices per million tokens are
// decimal strings ("2.5"), never floats; a request may send them as JSON
// numbers too, read exactly from their text. cached_input, cache_write
// and reasoning are omitted when not set (they cost input's or output's
// price).
type priceJSON struct {
	Object        string      `json:"object"`
	ID            string      `json:"id"`
	Model         string      `json:"model"`
	Deployment    string      `json:"deployment,omitempty"`
	Currency      string      `json:"currency"`
	EffectiveFrom time.Time   `json:"effective_from"`
	Input         price.Price `json:"input"`
	CachedInput   price.Price `json:"cached_input,omitempty"`
	CacheWrite    price.Price `json:"cache_write,omitempty"`
	Output        price.Price `json:"output"`
	Reasoning     price.Price `json:"reasoning,omitempty"`
}

type priceRequest struct {
	ID         string `json:"id"`
	Model      string `json:"model"`
	Deployment string `json:"deployment"`
	Currency   string `json:"currency"`
	// EffectiveFrom is RFC 3339 or YYYY-MM-DD (midnight UTC), as in the
	// configuration file.
	EffectiveFrom string       `json:"effective_from"`
	Input         *price.Price `json:"input"`
	CachedInput   price.Price  `json:"cached_input"`
	CacheWrite    price.Price  `json:"cache_write"`
	Output        *price.Price `json:"output"`
	Reasoning     price.Price  `json:"reasoning"`
}

var priceFields = fields{"id": nil, "model": nil, "deployment": nil, "currency": nil, "effective_from": nil,
	"input": nil, "cached_input": nil, "cache_write": nil, "output": nil, "reasoning": nil}

func priceOut(e price.Entry) priceJSON {
	return priceJSON{Object: "price", ID: e.ID, Model: e.Model, Deployment: e.Deployment, Currency: e.Currency,
		EffectiveFrom: e.EffectiveFrom.UTC(), Input: e.Input, CachedInput: e.CachedInput, CacheWrite: e.CacheWrite,
		Output: e.Output, Reasoning: e.Reasoning}
}

func (a *api) listPrices(w http.ResponseWriter, r *http.Request) error {
	entries, err := a.st.Prices(r.Context())
	if err != nil {
		return err
	}
	out := make([]priceJSON, len(entries))
	for i, e := range entries {
		out[i] = priceOut(e)
	}
	return writeJSON(w, http.StatusOK, list(out))
}

func (a *api) addPrice(w http.ResponseWriter, r *http.Request) error {
	var req priceRequest
	if err := decode(r, priceFields, &req); err != nil {
		return err
	}
	switch {
	case req.EffectiveFrom == "":
		return apierror.BadRequest("invalid_value", "effective_from", "effective_from: is required")
	case req.Input == nil:
		return apierror.BadRequest("invalid_value", "input", `input: is required (per million tokens, like "2.50"; "0" for free)`)
	case req.Output == nil:
		return apierror.BadRequest("invalid_value", "output", `output: is required (per million tokens, like "10"; "0" for free)`)
	}
	from, err := config.ParseEffective(req.EffectiveFrom)
	if err != nil {
		return apierror.BadRequest("invalid_value", "effective_from", "effective_from: "+err.Error())
	}
	e, err := a.st.AddPrice(r.Context(), price.Entry{ID: req.ID, Model: req.Model, Deployment: req.Deployment,
		Currency: req.Currency, EffectiveFrom: from, Input: *req.Input, CachedInput: req.CachedInput,
		CacheWrite: req.CacheWrite, Output: *req.Output, Reasoning: req.Reasoning})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, priceOut(e))
}

func (a *api) deletePrice(w http.ResponseWriter, r *http.Request) error {
	err := a.st.DeletePrice(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrPriceInForce) {
		return apierror.New(http.StatusConflict, apierror.TypeInvalidRequest, "price_in_force", "", err.Error())
	}
	if err != nil {
		return err
	}
	return noContent(w)
}
