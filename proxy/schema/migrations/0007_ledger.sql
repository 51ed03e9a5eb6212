-- The audit ledger (proxy/ledger): append-only hash chains, one per tenant
-- (its calls, written by the exporter in the transaction that stores their
-- spans) and one for admin actions ('_system'), with signed checkpoints of
-- all the chains' heads. Nothing in Loom updates or deletes an entry:
-- `loom audit verify` finds any row that was edited, deleted, reordered or
-- forged. Retention never touches these tables.
CREATE TABLE loom.ledger_entries (
    chain      text        NOT NULL CHECK (chain <> ''),
    idx        bigint      NOT NULL CHECK (idx >= 1),     -- 1, 2, ... per chain, no gaps
    kind       text        NOT NULL CHECK (kind IN ('call', 'admin')),
    -- call: trace id || span id; admin: action || '|' || request id.
    -- Appending a reference already here does nothing (redelivery).
    ref        text        NOT NULL,
    -- Whose readers see the row: the call's tenant, or the tenant an admin
    -- action concerns (NULL: operators only).
    tenant_id  text,
    canonical  bytea       NOT NULL,                       -- the canonical entry (README, "Audit ledger")
    prev_hash  bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash       bytea       NOT NULL CHECK (length(hash) = 32), -- SHA-256(prev_hash || canonical)
    -- When it was appended (not hashed): what `loom audit verify -from -to`
    -- and `loom audit export` select ranges by.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (chain, idx),
    UNIQUE (kind, ref)
);
CREATE INDEX ledger_entries_chain_time_idx ON loom.ledger_entries (chain, created_at);

-- Each chain's last entry. Append locks the chain's row (SELECT ... FOR
-- UPDATE) for the rest of its transaction, so one chain grows one
-- transaction at a time; idx 0 and 32 zero bytes before the first entry.
CREATE TABLE loom.ledger_heads (
    chain      text        PRIMARY KEY CHECK (chain <> ''),
    idx        bigint      NOT NULL CHECK (idx >= 0),
    hash       bytea       NOT NULL CHECK (length(hash) = 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Ed25519 signatures over the heads of all chains at signed_at (canonical
-- holds them: README, "Audit ledger"). public_key says which key signed;
-- verify checks it against the key it is given.
CREATE TABLE loom.ledger_checkpoints (
    id         bigserial   PRIMARY KEY,
    signed_at  timestamptz NOT NULL,
    public_key bytea       NOT NULL CHECK (length(public_key) = 32),
    canonical  bytea       NOT NULL,
    signature  bytea       NOT NULL CHECK (length(signature) = 64)
);
CREATE INDEX ledger_checkpoints_signed_at_idx ON loom.ledger_checkpoints (signed_at);

-- A tenant's readers see their tenant's entries (its calls, and the admin
-- actions that concern it) like its spans (0002); heads and checkpoints
-- name every tenant, so they stay the operator's.
GRANT SELECT ON loom.ledger_entries TO loom_tenant_reader;
ALTER TABLE loom.ledger_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_reader ON loom.ledger_entries FOR SELECT TO loom_tenant_reader
    USING (tenant_id = NULLIF(current_setting('loom.tenant_id', true), ''));
