-- A tenant model in the store may be served by several deployments, with
-- weights and priority tiers, fall back to other models of its tenant and
-- override the gateway's routing policy, as a model in the configuration
-- file may (proxy/tenancy.Model).
--
-- A model has either its one deployment in tenant_models.deployment (the
-- rows made before this migration, and the short form still) or, with
-- deployment NULL, its rows in tenant_model_deployments, in order.
ALTER TABLE loom.tenant_models
    ALTER COLUMN deployment DROP NOT NULL,
    ADD COLUMN fallbacks    text[]   NOT NULL DEFAULT '{}',
    ADD COLUMN max_attempts integer  NOT NULL DEFAULT 0 CHECK (max_attempts BETWEEN 0 AND 8), -- 0: the gateway's
    ADD COLUMN budget       interval NOT NULL DEFAULT '0' CHECK (budget >= '0');             -- 0: the gateway's

CREATE TABLE loom.tenant_model_deployments (
    tenant_id      text    NOT NULL,
    model          text    NOT NULL,
    position       integer NOT NULL CHECK (position >= 0),
    deployment     text    NOT NULL CHECK (deployment <> ''),
    upstream_model text, -- NULL: the model's
    weight         integer NOT NULL DEFAULT 0 CHECK (weight >= 0), -- 0 means 1
    priority       integer NOT NULL DEFAULT 0 CHECK (priority >= 0),
    PRIMARY KEY (tenant_id, model, position),
    UNIQUE (tenant_id, model, deployment),
    FOREIGN KEY (tenant_id, model) REFERENCES loom.tenant_models (tenant_id, name) ON DELETE CASCADE
);

CREATE TRIGGER tenant_model_deployments_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loom.tenant_model_deployments
    FOR EACH STATEMENT EXECUTE FUNCTION loom.notify_tenants();
