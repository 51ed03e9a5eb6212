-- The price catalog's entries kept in the database (the configuration file's
-- prices add to them; proxy/price), and the cost of each priced call on its
-- CLIENT span.
--
-- An entry is never changed: a new price is a new entry with a later
-- effective_from, so a call keeps the price in force when it started and a
-- stored cost can always be traced to the entry that made it (price_id).
-- UPDATE is refused. DELETE is refused once an entry is in force
-- (effective_from <= now()), since calls may have been priced by it; an entry
-- not yet in force can be deleted (a mistake caught in time). Prices are per
-- million tokens; a NULL cached_input or cache_write costs input's price, a
-- NULL reasoning output's.
CREATE TABLE loom.prices (
    id             text          PRIMARY KEY CHECK (id <> ''),
    model          text          NOT NULL CHECK (model <> ''),
    deployment     text          NOT NULL DEFAULT '', -- '': every deployment
    currency       text          NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    effective_from timestamptz   NOT NULL,
    input          numeric(18,6) NOT NULL CHECK (input BETWEEN 0 AND 1000000),
    cached_input   numeric(18,6) CHECK (cached_input BETWEEN 0 AND 1000000),
    cache_write    numeric(18,6) CHECK (cache_write BETWEEN 0 AND 1000000),
    output         numeric(18,6) NOT NULL CHECK (output BETWEEN 0 AND 1000000),
    reasoning      numeric(18,6) CHECK (reasoning BETWEEN 0 AND 1000000),
    created_at     timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (model, deployment, effective_from)
);

CREATE FUNCTION loom.prices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'price % cannot be changed: add an entry with a later effective_from', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'loom.prices cannot be truncated: calls were priced by its entries'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.effective_from <= now() THEN
        RAISE EXCEPTION 'price % is in force since %: calls may have been priced by it, so it stays; add an entry with a later effective_from',
            OLD.id, OLD.effective_from USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER prices_immutable BEFORE UPDATE OR DELETE ON loom.prices
    FOR EACH ROW EXECUTE FUNCTION loom.prices_immutable();
CREATE TRIGGER prices_no_truncate BEFORE TRUNCATE ON loom.prices
    FOR EACH STATEMENT EXECUTE FUNCTION loom.prices_immutable();

-- Gateways reload prices with their tenants, on the same channel.
CREATE TRIGGER prices_notify AFTER INSERT OR DELETE ON loom.prices
    FOR EACH STATEMENT EXECUTE FUNCTION loom.notify_tenants();

-- loom.cost (currency units, exact: the exporter writes the double's
-- shortest decimal form), loom.cost.currency and loom.cost.price_id.
ALTER TABLE loom.spans
    ADD COLUMN cost          numeric,
    ADD COLUMN cost_currency text,
    ADD COLUMN price_id      text;
