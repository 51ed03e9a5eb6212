-- The dashboards' hourly rollup (dashboards/queries Fact, kept by
-- proxy/rollup with the usage rollup of 0009): each panel that aggregates a
-- range has a fact, the additive pieces of its numbers per UTC hour and
-- tenant, and over a range of more than six hours it reads them instead of
-- every span of the range (the overview over 7 days at a million spans:
-- 8.7 s from the spans; proxy/console BenchmarkConsolePages).
--
-- It is the same cache as the usage rollup, with marks of its own: an hour
-- with a mark in loom.panel_dirty is read from the spans, one without from
-- here, and rollup.Refresh recomputes both rollups of an hour in the
-- transaction that removes its marks. So the dashboards are never silently
-- wrong either: a late span counts at once, only slower until the next
-- refresh.
--
-- One table for every fact, its columns named for their place rather than
-- their meaning (k1..k3 the fact's group keys, bin a histogram's bin,
-- n1..n7 its counts and sums, x an exact numeric sum, t_min and t_max
-- times): each fact's definition in dashboards/queries says what its
-- columns hold, and the panels reading it are written beside it.
--
-- A fact's rows are per tenant. A percentile's fact also has rows summed
-- over all tenants (all_tenants, tenant_id NULL): its histogram makes
-- dozens of rows per tenant and hour, which an all-tenant week would
-- otherwise add up 20 times over. Those rows are the admin's alone:
-- row-level security shows a tenant only its own. A table's fact (tokens
-- by tenant, model and provider: hundreds of rows an hour) is also summed
-- per UTC day (daily), and a range reads its whole unmarked days from
-- those.
CREATE TABLE loom.panel_hourly (
    fact        text        NOT NULL,
    hour        timestamptz NOT NULL,
    daily       boolean     NOT NULL DEFAULT false, -- a UTC day's sums (hour its start): a table's facts
    all_tenants boolean     NOT NULL DEFAULT false,
    tenant_id   text,
    k1          text,
    k2          text,
    k3          text,
    bin         integer,              -- a histogram's bin (dashboards/queries Bin)
    n1          bigint,
    n2          bigint,
    n3          bigint,
    n4          bigint,
    n5          bigint,
    n6          bigint,
    n7          bigint,
    x           numeric,
    t_min       timestamptz,
    t_max       timestamptz
);
-- A fact's rows over a range: a tenant's, or every tenant's (all_tenants
-- false) or their sums (true); hourly or daily. An hour's rows (the
-- refresher replaces them).
CREATE INDEX panel_hourly_tenant_idx ON loom.panel_hourly (fact, tenant_id, daily, hour);
CREATE INDEX panel_hourly_fact_idx ON loom.panel_hourly (fact, all_tenants, daily, hour);
CREATE INDEX panel_hourly_hour_idx ON loom.panel_hourly (hour);

-- The panels' marks: loom.usage_dirty's twin, written by the same trigger
-- and cleared only by a refresher that writes the facts. A refresher from
-- before this migration (an exporter not yet upgraded, which a newer schema
-- lets run) clears the usage marks after writing usage alone: with one
-- table of marks for both, it would leave hours unmarked whose facts it
-- never wrote, and the panels would read them as empty.
CREATE TABLE loom.panel_dirty (
    hour   timestamptz NOT NULL,
    writer integer     NOT NULL,
    n      bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (hour, writer)
);

-- A panel's fact for an hour can depend on the spans of the next hour or
-- the one before, besides its own: a CLIENT span is its call's last
-- attempt unless a later one exists (up to an hour later), and a
-- fallback's CLIENT span is counted under its SERVER span's model (which
-- started up to an hour earlier). So for the panels a CLIENT span marks its
-- hour and the one before, as for usage, and a SERVER span its hour and
-- the one after. The pipeline's facts are by the hour a span was stored in
-- (ingested_at), which a spool replayed days later puts far from its
-- start: every span marks that hour too. The usage marks are as 0009 has
-- them.
CREATE OR REPLACE FUNCTION loom.usage_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO loom.usage_dirty AS d (hour, writer)
    SELECT DISTINCT h, pg_backend_pid()
    FROM changed r
    CROSS JOIN LATERAL (VALUES (date_trunc('hour', r.start_time, 'UTC')),
        (CASE WHEN r.kind = 'client' THEN date_trunc('hour', r.start_time - interval '1 hour', 'UTC') END)) v(h)
    WHERE h IS NOT NULL
    ON CONFLICT (hour, writer) DO UPDATE SET n = d.n + 1;
    INSERT INTO loom.panel_dirty AS d (hour, writer)
    SELECT DISTINCT h, pg_backend_pid()
    FROM changed r
    CROSS JOIN LATERAL (VALUES (date_trunc('hour', r.start_time, 'UTC')),
        (date_trunc('hour', r.ingested_at, 'UTC')),
        (CASE r.kind WHEN 'client' THEN date_trunc('hour', r.start_time - interval '1 hour', 'UTC')
                     WHEN 'server' THEN date_trunc('hour', r.start_time + interval '1 hour', 'UTC') END)) v(h)
    WHERE h IS NOT NULL
    ON CONFLICT (hour, writer) DO UPDATE SET n = d.n + 1;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION loom.usage_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM loom.usage_hourly;
    DELETE FROM loom.panel_hourly;
    DELETE FROM loom.usage_dirty;
    DELETE FROM loom.panel_dirty;
    RETURN NULL;
END
$$;

-- A store that already holds spans: every hour of them is marked for the
-- panels, so they read it from the spans until the refresher has rolled
-- it up.
INSERT INTO loom.panel_dirty (hour, writer)
SELECT DISTINCT date_trunc('hour', start_time, 'UTC'), 0 FROM loom.spans
UNION
SELECT DISTINCT date_trunc('hour', ingested_at, 'UTC'), 0 FROM loom.spans;

-- A tenant's readers see their tenant's facts, like its spans (0002); the
-- all-tenant sums and the pipeline's facts (no tenant) are the admin's.
-- The marks name no tenant.
GRANT SELECT ON loom.panel_hourly, loom.panel_dirty TO loom_tenant_reader;
ALTER TABLE loom.panel_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_reader ON loom.panel_hourly FOR SELECT TO loom_tenant_reader
    USING (NOT all_tenants AND tenant_id = NULLIF(current_setting('loom.tenant_id', true), ''));
