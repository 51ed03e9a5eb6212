package server

import (
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/request"
	"github.com/loom-gateway/loom/proxy/tenant"
)

func TestReservation_DefaultOutputForEachChoice_CappedAtTheTPM(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	const body = 400 // bytes: a prompt of about 100 tokens
	tests := []struct {
		name      string
		op        call.Operation
		maxTokens *int64
		n         *int64
		tpm       int64
		want      int64
	}{
		{name: "max_tokens", op: call.OpChat, maxTokens: i64(50), want: 150},
		{name: "max_tokens times n", op: call.OpChat, maxTokens: i64(50), n: i64(3), want: 250},
		{name: "max_tokens over the TPM is not capped", op: call.OpChat, maxTokens: i64(5000), tpm: 1000, want: 5100},
		{name: "no max_tokens: the default", op: call.OpChat, want: 100 + 4096},
		{name: "no max_tokens: the default times n", op: call.OpChat, n: i64(2), tpm: 100000, want: 100 + 2*4096},
		{name: "no max_tokens: capped at the TPM", op: call.OpChat, tpm: 1000, want: 1000},
		{name: "prompt alone over the TPM", op: call.OpChat, tpm: 50, want: 100},
		{name: "embeddings generate nothing", op: call.OpEmbeddings, tpm: 1000, want: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request.Request{Op: tt.op}
			req.Params.MaxTokens, req.Params.N = tt.maxTokens, tt.n
			if got := reservation(&req, body, 4096, tt.tpm); got != tt.want {
				t.Fatalf("reservation = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTightestTPM_SmallestOfKeyAndTenant(t *testing.T) {
	for _, tt := range []struct{ key, tenant, want int64 }{
		{0, 0, 0}, {1000, 0, 1000}, {0, 2000, 2000}, {3000, 2000, 2000}, {1000, 2000, 1000},
	} {
		k := &tenant.Key{Tenant: &tenant.Tenant{}}
		k.Limit.Rule.TPM, k.Tenant.Limit.Rule.TPM = tt.key, tt.tenant
		if got := tightestTPM(k); got != tt.want {
			t.Errorf("key TPM %d, tenant TPM %d: %d, want %d", tt.key, tt.tenant, got, tt.want)
		}
	}
}

// A call reserves its prompt as the estimate would bill it: both round up,
// so a 401-byte body reserves 101 tokens (it reserved 100 while the
// estimate said 101).
func TestReservation_CountsThePromptAsUsageEstimatesIt(t *testing.T) {
	req := request.Request{Op: call.OpEmbeddings}
	for _, bodyLen := range []int{0, 1, 400, 401, 403} {
		if got, want := reservation(&req, bodyLen, 4096, 0), call.EstimateTokens(bodyLen); got != want {
			t.Errorf("%d bytes reserve %d tokens, estimated as %d", bodyLen, got, want)
		}
	}
	if got := reservation(&req, 401, 4096, 0); got != 101 {
		t.Errorf("401 bytes reserve %d tokens, want 101", got)
	}
}
