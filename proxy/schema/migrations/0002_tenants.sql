-- Tenants, their models, API keys and provider credentials: the source of the
-- proxies' in-memory snapshot (proxy/store loads it whole and reloads it on
-- NOTIFY loom_tenants), and row-level security so that code reading spans on
-- a tenant's behalf sees that tenant's rows only.
--
-- Limits are 0 for "no limit"; content_max_bytes 0 means the default cap.
CREATE TABLE loom.tenants (
    id                 text        PRIMARY KEY CHECK (id <> ''),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    content_capture    boolean     NOT NULL DEFAULT false,
    content_max_bytes  integer     NOT NULL DEFAULT 0 CHECK (content_max_bytes >= 0),
    rpm                bigint      NOT NULL DEFAULT 0 CHECK (rpm >= 0),
    tpm                bigint      NOT NULL DEFAULT 0 CHECK (tpm >= 0),
    concurrent_streams bigint      NOT NULL DEFAULT 0 CHECK (concurrent_streams >= 0)
);

CREATE TABLE loom.tenant_models (
    tenant_id      text NOT NULL REFERENCES loom.tenants (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name <> ''),
    deployment     text NOT NULL CHECK (deployment <> ''),
    upstream_model text, -- NULL: the public name
    PRIMARY KEY (tenant_id, name)
);

-- Keys are stored as their SHA-256 only; the key itself is shown once, when
-- it is made. ids are unique across tenants: spans carry them.
CREATE TABLE loom.api_keys (
    id                 text        PRIMARY KEY CHECK (id <> ''),
    tenant_id          text        NOT NULL REFERENCES loom.tenants (id) ON DELETE CASCADE,
    sha256             bytea       NOT NULL UNIQUE CHECK (length(sha256) = 32),
    prefix             text        NOT NULL, -- the key's first 12 characters, for people
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    revoked_at         timestamptz,
    models             text[],     -- NULL: every model of the tenant
    rpm                bigint      NOT NULL DEFAULT 0 CHECK (rpm >= 0),
    tpm                bigint      NOT NULL DEFAULT 0 CHECK (tpm >= 0),
    concurrent_streams bigint      NOT NULL DEFAULT 0 CHECK (concurrent_streams >= 0)
);
CREATE INDEX api_keys_tenant_idx ON loom.api_keys (tenant_id);

-- A tenant's own credential for a deployment, AES-256-GCM sealed with the
-- tenant and deployment as associated data (proxy/secret), so a row copied to
-- another tenant does not open. key_id names the key that sealed it, so a
-- proxy given the wrong key says so instead of failing to decrypt.
CREATE TABLE loom.tenant_credentials (
    tenant_id  text        NOT NULL REFERENCES loom.tenants (id) ON DELETE CASCADE,
    deployment text        NOT NULL CHECK (deployment <> ''),
    ciphertext bytea       NOT NULL,
    nonce      bytea       NOT NULL,
    key_id     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, deployment)
);

-- Any change wakes every proxy's LISTEN loom_tenants, which reloads the whole
-- snapshot: the payload says nothing, and Postgres folds identical
-- notifications of one transaction into one.
CREATE FUNCTION loom.notify_tenants() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('loom_tenants', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loom.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION loom.notify_tenants();
CREATE TRIGGER tenant_models_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loom.tenant_models
    FOR EACH STATEMENT EXECUTE FUNCTION loom.notify_tenants();
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loom.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION loom.notify_tenants();
CREATE TRIGGER tenant_credentials_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loom.tenant_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION loom.notify_tenants();

-- span_events gets its span's tenant (the exporter fills it from
-- loom.tenant.id) so that row-level security can filter it like the others.
-- Events already stored take it from their span.
ALTER TABLE loom.span_events ADD COLUMN tenant_id text;
UPDATE loom.span_events e SET tenant_id = s.tenant_id
FROM loom.spans s
WHERE s.trace_id = e.trace_id AND s.span_id = e.span_id AND s.start_time = e.span_start_time
  AND s.tenant_id IS NOT NULL;

-- The role that reads spans on a tenant's behalf (proxy/store.ReadAsTenant:
-- SET LOCAL ROLE plus the loom.tenant_id setting). Roles belong to the whole
-- server, not to this database, so another database's migration (or one
-- running at this moment) may have made it already.
DO $$
BEGIN
    CREATE ROLE loom_tenant_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- Whoever migrates is whoever the store connects as: it must be able to
-- SET ROLE loom_tenant_reader. Superusers already can.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'loom_tenant_reader', 'MEMBER') THEN
        EXECUTE format('GRANT loom_tenant_reader TO %I', current_user);
    END IF;
END
$$;

-- The reader may read the three parent tables, nothing else: no partition
-- (a partition has no policy of its own, and selecting from one checks the
-- partition's grants, which the reader has none of), no tenant or key table.
-- The owner (the exporter, the store) bypasses these policies; any other
-- role without BYPASSRLS now sees no span rows unless it is given a policy.
-- NULLIF: after a transaction that set loom.tenant_id, the session keeps the
-- setting as '', which must match nothing.
GRANT USAGE ON SCHEMA loom TO loom_tenant_reader;
GRANT SELECT ON loom.spans, loom.span_events, loom.span_content TO loom_tenant_reader;

ALTER TABLE loom.spans ENABLE ROW LEVEL SECURITY;
ALTER TABLE loom.span_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE loom.span_content ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_reader ON loom.spans FOR SELECT TO loom_tenant_reader
    USING (tenant_id = NULLIF(current_setting('loom.tenant_id', true), ''));
CREATE POLICY tenant_reader ON loom.span_events FOR SELECT TO loom_tenant_reader
    USING (tenant_id = NULLIF(current_setting('loom.tenant_id', true), ''));
CREATE POLICY tenant_reader ON loom.span_content FOR SELECT TO loom_tenant_reader
    USING (tenant_id = NULLIF(current_setting('loom.tenant_id', true), ''));
