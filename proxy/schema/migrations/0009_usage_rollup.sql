-- The hourly usage rollup (proxy/rollup): calls, tokens by kind and exact
-- cost per UTC hour of the calls' start, tenant, key or model, and currency,
-- so that the console's usage page reads a few hundred rows instead of
-- joining every call of the range to its served attempt (456 ms for a day
-- of all tenants at a million spans; proxy/console BenchmarkConsolePages).
--
-- The rollup is a cache that can never be silently wrong. Every statement
-- that writes loom.spans marks the hours it touched in loom.usage_dirty, in
-- its own transaction (the triggers below): an hour with a mark is read
-- from the spans themselves, an hour without one from the rollup. The
-- refresher (rollup.Refresh, run by the exporter) recomputes marked hours
-- and removes only the marks it saw and that did not change meanwhile, in
-- the transaction that writes the hours: a span that lands during a refresh
-- leaves its mark behind. So a reader's snapshot always sees, for each
-- hour, either a mark or a rollup that holds every span of that hour it can
-- see: late spans (a spool replayed a day later) are counted, only slower
-- until the next refresh.
--
-- The rollup outlives span retention: dropping a day's partitions leaves
-- its usage (no content, no call ids: counts and sums), so spend history
-- stays while the calls are gone. TRUNCATE of loom.spans empties both.

-- Each hour's calls are in it twice, summed two ways: by key (dim 'key',
-- dim_value the key id) and by model (dim 'model', dim_value the model
-- asked for, else the attempt's: the calls list's Model). A page groups by
-- tenant, key or model, never by key and model at once, and the two sums
-- are several times fewer rows than one per tenant, key, model and
-- currency (266,000 rows against about 70,000 for the week of
-- make bench-console).
CREATE TABLE loom.usage_hourly (
    hour              timestamptz NOT NULL, -- a UTC hour: the calls' SERVER spans start in it
    tenant_id         text,
    dim               text        NOT NULL CHECK (dim IN ('key', 'model')),
    dim_value         text,                 -- the key id (NULL: none), or the model ('' if none)
    currency          text,                 -- the served attempt's cost currency; NULL: no cost
    calls             bigint      NOT NULL,
    unpriced          bigint      NOT NULL, -- calls with usage but no cost
    input_tokens      bigint,               -- NULL: no call of the row reported the kind
    output_tokens     bigint,
    cache_read_tokens bigint,
    reasoning_tokens  bigint,
    cost              numeric,              -- exact: a numeric sum of numeric costs
    UNIQUE NULLS NOT DISTINCT (hour, dim, tenant_id, dim_value, currency)
);
CREATE INDEX usage_hourly_tenant_hour_idx ON loom.usage_hourly (tenant_id, dim, hour);
-- The first hour a key or model was used (the console's calls filter
-- starts its walk there: proxy/console usedSince).
CREATE INDEX usage_hourly_value_hour_idx ON loom.usage_hourly (dim, dim_value, hour);

-- Hours that changed since their rollup: one row per hour and writing
-- backend (pg_backend_pid()), so concurrent writers never wait on each
-- other's mark; n grows with every statement that marks it again, which
-- is how the refresher tells a mark it saw from one renewed meanwhile.
CREATE TABLE loom.usage_dirty (
    hour   timestamptz NOT NULL,
    writer integer     NOT NULL,
    n      bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (hour, writer)
);

-- A CLIENT span starts after its call's SERVER span, by at most the
-- routing attempts' timeouts (an hour bounds them: proxy/rollup attemptSlack),
-- so it marks its own hour and the one before: its call's hour is one of
-- the two. Every trigger names its rows "changed"; an UPDATE has two, one
-- for the rows as they were and one for the rows as they are (a new start
-- time moves a row to another hour).
CREATE FUNCTION loom.usage_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO loom.usage_dirty AS d (hour, writer)
    SELECT DISTINCT h, pg_backend_pid()
    FROM changed r
    CROSS JOIN LATERAL (VALUES (date_trunc('hour', r.start_time, 'UTC')),
        (CASE WHEN r.kind = 'client' THEN date_trunc('hour', r.start_time - interval '1 hour', 'UTC') END)) v(h)
    WHERE h IS NOT NULL
    ON CONFLICT (hour, writer) DO UPDATE SET n = d.n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER usage_mark_insert AFTER INSERT ON loom.spans
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION loom.usage_mark();
CREATE TRIGGER usage_mark_update_old AFTER UPDATE ON loom.spans
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION loom.usage_mark();
CREATE TRIGGER usage_mark_update_new AFTER UPDATE ON loom.spans
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION loom.usage_mark();
CREATE TRIGGER usage_mark_delete AFTER DELETE ON loom.spans
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION loom.usage_mark();

CREATE FUNCTION loom.usage_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM loom.usage_hourly;
    DELETE FROM loom.usage_dirty;
    RETURN NULL;
END
$$;
CREATE TRIGGER usage_truncate AFTER TRUNCATE ON loom.spans
    FOR EACH STATEMENT EXECUTE FUNCTION loom.usage_truncated();

-- A store that already holds spans: every hour of them is marked, so it is
-- read from the spans until the refresher has rolled it up.
INSERT INTO loom.usage_dirty (hour, writer)
SELECT DISTINCT date_trunc('hour', start_time, 'UTC'), 0 FROM loom.spans;

-- A tenant's readers see their tenant's rollup rows, like its spans (0002);
-- the marks name no tenant.
GRANT SELECT ON loom.usage_hourly, loom.usage_dirty TO loom_tenant_reader;
ALTER TABLE loom.usage_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_reader ON loom.usage_hourly FOR SELECT TO loom_tenant_reader
    USING (tenant_id = NULLIF(current_setting('loom.tenant_id', true), ''));
