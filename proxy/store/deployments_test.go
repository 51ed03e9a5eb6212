package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

func TestSetModelsAndCredential_UnknownDeployment_RefusedNamingTheField(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	st := open(t, e.url, e.box, store.WithDeployments([]string{"openai", "azure"}))
	if err := st.CreateTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	err := st.SetModels(ctx, "acme", []tenancy.Model{{Name: "a", Deployment: "openai"}, {Name: "b", Deployment: "opnai"}})
	var fe *store.FieldError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "models[1].deployment" ||
		!strings.Contains(err.Error(), `no deployment named "opnai"`) {
		t.Fatalf("SetModels with a typo = %v; want a FieldError on models[1].deployment", err)
	}
	if got, _ := st.GetTenant(ctx, "acme"); len(got.Models) != 0 {
		t.Errorf("a refused model list was stored: %+v", got.Models)
	}
	err = st.SetCredential(ctx, "acme", "azur", "sk-x")
	if !errors.As(err, &fe) || fe.Field != "deployment" {
		t.Errorf("SetCredential for an unknown deployment = %v; want a FieldError on deployment", err)
	}
	if err := st.SetModels(ctx, "acme", []tenancy.Model{{Name: "a", Deployment: "azure"}}); err != nil {
		t.Errorf("a known deployment: %v", err)
	}
}
