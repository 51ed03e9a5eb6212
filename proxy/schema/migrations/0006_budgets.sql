-- Spend caps of tenants and keys (proxy/budget): a JSON array of
-- {"period": "day"|"month", "limit": "25.00", "alert_at": 0.8}, at most one
-- per period, validated by the gateway (tenancy.Validate) before it is
-- stored. They live on the rows they cap, so the triggers that already
-- reload the gateways on any change of a tenant or key cover them too. The
-- spend itself is not here: it is counted in Redis or in each gateway's
-- memory, per period, and the spans hold every call's cost.
ALTER TABLE loom.tenants ADD COLUMN budgets jsonb NOT NULL DEFAULT '[]'::jsonb
    CHECK (jsonb_typeof(budgets) = 'array');
ALTER TABLE loom.api_keys ADD COLUMN budgets jsonb NOT NULL DEFAULT '[]'::jsonb
    CHECK (jsonb_typeof(budgets) = 'array');
