-- Spans, their events and their captured content, range-partitioned by UTC day
-- on the span's start time (partitions are made by schema.EnsurePartitions,
-- never here: there is deliberately no DEFAULT partition, so a row for a day
-- nobody prepared fails loudly instead of landing somewhere retention never
-- drops). Rows are idempotent on (trace_id, span_id, start_time): the exporter
-- inserts with ON CONFLICT DO NOTHING, so at-least-once delivery upstream
-- becomes exactly-once here.
CREATE SCHEMA IF NOT EXISTS loom;

CREATE TABLE loom.spans (
    trace_id               text             NOT NULL, -- 32 lowercase hex digits
    span_id                text             NOT NULL, -- 16 lowercase hex digits
    parent_span_id         text,                      -- NULL for a root span
    start_time             timestamptz      NOT NULL,
    end_time               timestamptz,
    duration_ms            double precision,
    name                   text             NOT NULL,
    kind                   text             NOT NULL
        CHECK (kind IN ('server', 'client', 'internal', 'producer', 'consumer', 'unspecified')),
    status_code            text             NOT NULL CHECK (status_code IN ('unset', 'ok', 'error')),
    status_message         text,
    service_name           text,                      -- resource service.name
    scope_name             text,
    instance_id            text,                      -- loom.instance.id
    seq                    bigint,                    -- loom.seq: gapless per instance
    tenant_id              text,
    api_key_id             text,
    provider               text,                      -- gen_ai.provider.name
    operation              text,                      -- gen_ai.operation.name
    request_model          text,
    response_model         text,
    response_id            text,
    finish_reasons         text[],
    input_tokens           bigint,
    output_tokens          bigint,
    cache_read_tokens      bigint,
    reasoning_tokens       bigint,
    total_tokens           bigint,
    stream                 boolean,
    time_to_first_chunk_ms double precision,
    overhead_ms            double precision,          -- loom.gateway.overhead, in ms
    http_status            integer,
    upstream_attempt       integer,
    usage_source           text,
    client_disconnected    boolean,
    chunks                 integer,
    error_type             text,
    server_address         text,
    deployment             text,
    -- Every span attribute that did not land in a typed column above (a value
    -- whose type did not fit stays here too), so a renamed convention loses
    -- nothing. Content attributes never come here: see loom.span_content.
    attributes             jsonb            NOT NULL DEFAULT '{}',
    -- The resource's attributes (service.name included), one object per span.
    resource               jsonb            NOT NULL DEFAULT '{}',
    -- Span links as [{"trace_id","span_id","trace_state","attributes"}], NULL if none.
    links                  jsonb,
    ingested_at            timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (trace_id, span_id, start_time)
) PARTITION BY RANGE (start_time);

CREATE INDEX spans_tenant_time_idx ON loom.spans (tenant_id, start_time);
CREATE INDEX spans_instance_seq_idx ON loom.spans (instance_id, seq);
-- One day per partition, rows arrive roughly in time order: BRIN is tiny and
-- enough for range scans inside a partition.
CREATE INDEX spans_start_time_idx ON loom.spans USING brin (start_time);

CREATE TABLE loom.span_events (
    trace_id        text        NOT NULL,
    span_id         text        NOT NULL,
    span_start_time timestamptz NOT NULL, -- the span's start: the partition key
    seq             integer     NOT NULL, -- the event's index in the span
    time            timestamptz NOT NULL,
    name            text        NOT NULL,
    attributes      jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (trace_id, span_id, span_start_time, seq)
) PARTITION BY RANGE (span_start_time);

-- Prompt and completion content, kept apart from spans so that dashboards
-- never read it by accident and it can get its own grants and retention.
CREATE TABLE loom.span_content (
    trace_id        text        NOT NULL,
    span_id         text        NOT NULL,
    start_time      timestamptz NOT NULL,
    tenant_id       text,
    input_messages  jsonb,      -- gen_ai.input.messages
    output_messages jsonb,      -- gen_ai.output.messages
    PRIMARY KEY (trace_id, span_id, start_time)
) PARTITION BY RANGE (start_time);

-- Spans that can never be inserted (invalid UTF-8, NUL bytes, oversized
-- values, a start time outside the retention window...). payload is the span
-- re-encoded as an OTLP ExportTraceServiceRequest (ptrace protobuf) with its
-- resource and scope, so it can be fixed and replayed.
CREATE TABLE loom.dead_letters (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    reason      text        NOT NULL,
    trace_id    text,
    span_id     text,
    span_name   text,
    payload     bytea       NOT NULL
);
