-- The grafana role that deploy/grafana's Postgres datasource logs in as:
-- read-only, on the tables the dashboards read (never loom.span_content, the
-- captured prompts), with BYPASSRLS because an operator's dashboards show
-- every tenant. compose.yaml's grafana-db-role service runs this with psql
-- after Loom has migrated the schema, on every `docker compose up`: it is
-- idempotent, and it sets the password from $GRAFANA_PG_PASSWORD (read by
-- psql's \getenv, so it is never on a command line).
\set ON_ERROR_STOP on
\getenv grafana_password GRAFANA_PG_PASSWORD
SELECT 'CREATE ROLE grafana'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana') \gexec
ALTER ROLE grafana WITH LOGIN BYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'grafana_password';
GRANT USAGE ON SCHEMA loom TO grafana;
GRANT SELECT ON loom.spans, loom.span_events, loom.dead_letters, loom.panel_hourly, loom.panel_dirty TO grafana;
