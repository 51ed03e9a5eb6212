-- Indexes for reading calls at scale (the console's pages, Grafana's panels):
-- every query that reads spans names a kind ('server' for calls as clients
-- saw them, 'client' for upstream attempts) and a time range or a newest-first
-- order, and a tenant's reads add tenant_id by row-level security. Measured
-- over a million spans (proxy/console BenchmarkConsolePages_1MSpans and
-- TestConsolePages_AtScale_QueriesUseIndexes):
--
-- - (kind, start_time, trace_id): an hour of one kind out of a day's
--   partition, and the calls list's newest-first pages (ORDER BY start_time,
--   trace_id DESC, keyset from a cursor), as a merge of the partitions'
--   indexes that stops after one page, instead of a sort of every call.
-- - (tenant_id, kind, start_time, trace_id): the same under row-level
--   security, for a tenant of any size. It leads with tenant_id and
--   start_time like spans_tenant_time_idx, which it replaces: keeping both
--   would cost every insert a third index for no read.
--
-- On an existing store, CREATE INDEX on the partitioned table builds each
-- partition's index in turn and blocks inserts into loom.spans while it
-- runs (the exporter's queue holds the spans meanwhile, nothing is lost);
-- migrate when a pause of a few seconds per million spans is acceptable.
CREATE INDEX IF NOT EXISTS spans_kind_time_idx ON loom.spans (kind, start_time, trace_id);
CREATE INDEX IF NOT EXISTS spans_tenant_kind_time_idx ON loom.spans (tenant_id, kind, start_time, trace_id);
DROP INDEX IF EXISTS loom.spans_tenant_time_idx;

-- Pipeline health counts spans by when they were ingested (the last hour of
-- ingested_at, within the partitions of the day before the range): rows
-- arrive in ingested_at order, so a BRIN index finds that hour in a few
-- block ranges and costs an insert next to nothing.
CREATE INDEX IF NOT EXISTS spans_ingested_at_idx ON loom.spans USING brin (ingested_at);
