{{/* Names and labels shared by every template. */}}

{{- define "loom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "loom.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "loom.collectorName" -}}
{{- printf "%s-otelcol" (include "loom.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "loom.redisName" -}}
{{- printf "%s-redis" (include "loom.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "loom.pgName" -}}
{{- printf "%s-pg" (include "loom.fullname" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "loom.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "loom.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* labels: common labels; call with (dict "root" $ "component" "gateway"). */}}
{{- define "loom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "loom.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: loom
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "loom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loom.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "loom.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* secretEnv: one env var from a Secret; call with (dict "root" $ "env" "NAME" "ref" .Values.secrets.x). */}}
{{- define "loom.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ default .root.Values.secrets.name .ref.secretName }}
      key: {{ .ref.key }}
      {{- if .ref.optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* databaseURLRef: secrets.databaseURL, or CloudNativePG's app Secret when the chart makes the cluster. */}}
{{- define "loom.databaseURLRef" -}}
{{- $ref := deepCopy .Values.secrets.databaseURL -}}
{{- if and .Values.postgres.cnpg.enabled (not $ref.secretName) -}}
{{- $_ := set $ref "secretName" (printf "%s-app" (include "loom.pgName" .)) -}}
{{- $_ := set $ref "key" "uri" -}}
{{- end -}}
{{- toJson $ref -}}
{{- end -}}

{{/*
loom.config: loom.yaml, the user's loom.config with the keys the chart owns set over it. Every
*_env key names a variable the Loom container gets from a Secret (see loom-env).
*/}}
{{- define "loom.config" -}}
{{- $v := .Values.loom -}}
{{- $owned := dict
  "listen" (printf ":%d" (int $v.ports.gateway))
  "ops" (dict "listen" (printf ":%d" (int $v.ports.ops)) "pprof" $v.pprof)
  "store" (dict "database_url_env" "LOOM_DATABASE_URL" "secret_key_env" "LOOM_SECRET_KEY")
-}}
{{- if $v.admin.enabled -}}
{{- $_ := set $owned "admin" (dict "listen" (printf ":%d" (int $v.ports.admin)) "token_env" "LOOM_ADMIN_TOKEN") -}}
{{- end -}}
{{- if $v.console.enabled -}}
{{- $_ := set $owned "console" (dict "listen" (printf ":%d" (int $v.ports.console)) "database_url_env" "LOOM_DATABASE_URL") -}}
{{- end -}}
{{- if .Values.redis.enabled -}}
{{- $_ := set $owned "redis" (dict "url_env" "LOOM_REDIS_URL") -}}
{{- end -}}
{{- $tracing := dict "spool" (dict "dir" "/var/lib/loom/spool") -}}
{{- if .Values.collector.enabled -}}
{{- $_ := set $tracing "endpoint" (printf "http://%s:%d" (include "loom.collectorName" .) (int .Values.collector.ports.otlpGrpc)) -}}
{{- $_ := set $tracing "protocol" "grpc" -}}
{{- end -}}
{{- $_ := set $owned "tracing" $tracing -}}
{{- toYaml (mergeOverwrite (deepCopy $v.config) $owned) -}}
{{- end -}}

{{/*
collector.config: otelcol-loom's config, the user's collector.config with the keys the chart owns
set over it. The database URL stays in the environment: ${env:LOOM_DATABASE_URL}.
*/}}
{{- define "loom.collectorConfig" -}}
{{- $c := .Values.collector -}}
{{- $dir := "/var/lib/otelcol-loom" -}}
{{- /* without_type_suffix false: counters end in _total, as the alert rules and dashboards name them. */ -}}
{{- $owned := dict
  "receivers" (dict "otlp" (dict "protocols" (dict
      "grpc" (dict "endpoint" (printf "0.0.0.0:%d" (int $c.ports.otlpGrpc)))
      "http" (dict "endpoint" (printf "0.0.0.0:%d" (int $c.ports.otlpHttp))))))
  "exporters" (dict "postgres" (dict "endpoint" "${env:LOOM_DATABASE_URL}"))
  "extensions" (dict
      "file_storage" (dict "directory" $dir "compaction" (dict "directory" $dir))
      "health_check" (dict "endpoint" (printf "0.0.0.0:%d" (int $c.ports.health))))
  "service" (dict "telemetry" (dict "metrics" (dict "readers" (list
      (dict "pull" (dict "exporter" (dict "prometheus" (dict "host" "0.0.0.0" "port" (int $c.ports.metrics) "without_type_suffix" false))))))))
-}}
{{- toYaml (mergeOverwrite (deepCopy $c.config) $owned) -}}
{{- end -}}
