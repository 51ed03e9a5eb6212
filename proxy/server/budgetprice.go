package server

import (
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// estimateCost is the most the call can cost, from the price catalog: its
// input tokens as the TPM limit estimates them (call.EstimateTokens of the
// whole body) and maxOutput, at the entry for the route's model on its
// first deployment (or else for the upstream model there, as priceCall
// looks them up). False when no entry prices the call. It allocates
// nothing.
func (s *Server) estimateCost(ex *exchange, rt *tenant.Route, bodyLen int) (price.Amount, bool) {
	cat := s.prices.cat.Load()
	in, out := call.EstimateTokens(bodyLen), maxOutput(ex)
	dep, at := rt.Upstream.Name, ex.rec.Start
	a, _, ok := cat.Estimate(rt.Model, dep, at, in, out)
	if !ok && rt.UpstreamModel != "" && rt.UpstreamModel != rt.Model {
		a, _, ok = cat.Estimate(rt.UpstreamModel, dep, at, in, out)
	}
	return a, ok
}

// recordCost is the call's cost as priceCall set it on its record, if an
// entry priced it.
func recordCost(rec *call.Record) (price.Amount, bool) {
	return price.Amount(rec.Cost), rec.PriceID != ""
}
