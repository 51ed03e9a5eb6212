package devstack

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Environment variables that fan the traces out to one's own OTel backend
// (Tempo, Jaeger, Honeycomb, another collector...) beside Postgres. Unset
// LOOM_OTLP_ENDPOINT, there is no fan-out.
const (
	// EnvOTLPEndpoint is the backend: http://host:port (plaintext),
	// https://host:port (TLS, the system's roots or EnvOTLPCAFile's), or
	// host:port (TLS, unless EnvOTLPInsecure). With the http protocol, a
	// URL whose path ends in /v1/traces is used as it is; any other gets
	// /v1/traces appended.
	EnvOTLPEndpoint = "LOOM_OTLP_ENDPOINT"
	// EnvOTLPProtocol is grpc (the default; exporter otlp_grpc) or http
	// (http/protobuf is the same; exporter otlphttp).
	EnvOTLPProtocol = "LOOM_OTLP_PROTOCOL"
	// EnvOTLPInsecure=true sends plaintext to a host:port without a scheme;
	// the scheme http:// says so too. Never the default.
	EnvOTLPInsecure = "LOOM_OTLP_INSECURE"
	// EnvOTLPCAFile is a PEM file of the CA that signed the backend's
	// certificate (a private CA); unset, the system's roots.
	EnvOTLPCAFile = "LOOM_OTLP_CA_FILE"
	// EnvOTLPCompression is gzip (the default), zstd, snappy, deflate,
	// zlib or none.
	EnvOTLPCompression = "LOOM_OTLP_COMPRESSION"
	// EnvOTLPHeaders are headers to send, as OTEL_EXPORTER_OTLP_HEADERS has
	// them: name=value,name2=value2, values URL-encoded. They usually hold
	// a token, so the values reach the collector through its environment
	// (LOOM_OTLP_HEADER_0, _1...), never written to .loom/.
	EnvOTLPHeaders = "LOOM_OTLP_HEADERS"
)

// fanoutName is the fan-out's exporter, processor and pipeline name:
// its drops show in the collector's metrics as exporter="otlp_grpc/fanout"
// (or "otlphttp/fanout").
const fanoutName = "fanout"

// fanoutQueueSpans is how many spans the fan-out holds in memory while its
// backend is slow or down; beyond that it drops them (counted in
// otelcol_exporter_enqueue_failed_spans_total) rather than hold up Loom or
// Postgres.
const fanoutQueueSpans = 50000

// Fanout is a second OTLP exporter that otelcol-loom sends every span to,
// beside Postgres.
type Fanout struct {
	// HTTP picks otlphttp; otherwise otlp_grpc.
	HTTP bool
	// Endpoint is as the exporter takes it: host:port for gRPC, a URL for
	// HTTP; TracesEndpoint a full URL (HTTP only) ending in /v1/traces.
	Endpoint, TracesEndpoint string
	// Insecure sends plaintext (only from an http:// endpoint or
	// EnvOTLPInsecure); CAFile is a private CA.
	Insecure bool
	CAFile   string
	// Compression is a configcompression type.
	Compression string
	// Headers are the names of the headers to send; the value of the i-th
	// is in the collector's environment as headerEnv(i).
	Headers []string
	// Env is what the collector's environment needs: the header values.
	Env []string
	// QueueSpans bounds the fan-out's sending queue (0: fanoutQueueSpans).
	QueueSpans int
}

// ExporterID is the fan-out exporter's id in the collector's config and
// in its metrics' exporter label.
func (f *Fanout) ExporterID() string {
	if f.HTTP {
		return "otlphttp/" + fanoutName
	}
	return "otlp_grpc/" + fanoutName
}

// Describe names the backend for people, without header values.
func (f *Fanout) Describe() string {
	proto, tls := "OTLP gRPC", "TLS"
	if f.HTTP {
		proto = "OTLP HTTP"
	}
	switch {
	case f.Insecure:
		tls = "plaintext"
	case f.CAFile != "":
		tls = "TLS, CA " + f.CAFile
	}
	target := f.Endpoint
	if f.TracesEndpoint != "" {
		target = f.TracesEndpoint
	}
	return fmt.Sprintf("%s to %s (%s, %s compression)", proto, target, tls, f.Compression)
}

func headerEnv(i int) string { return "LOOM_OTLP_HEADER_" + strconv.Itoa(i) }

// ChooseFanout reads the LOOM_OTLP_* variables: nil without
// LOOM_OTLP_ENDPOINT, an error naming every variable that is wrong.
func ChooseFanout(getenv func(string) string) (*Fanout, error) {
	raw := strings.TrimSpace(getenv(EnvOTLPEndpoint))
	if raw == "" {
		return nil, nil
	}
	f := &Fanout{CAFile: strings.TrimSpace(getenv(EnvOTLPCAFile)), Compression: "gzip"}
	var errs []error
	switch p := strings.ToLower(strings.TrimSpace(getenv(EnvOTLPProtocol))); p {
	case "", "grpc":
	case "http", "http/protobuf":
		f.HTTP = true
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want grpc or http", EnvOTLPProtocol, p))
	}
	insecure := false
	if v := strings.TrimSpace(getenv(EnvOTLPInsecure)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", EnvOTLPInsecure, v))
		}
		insecure = b
	}
	if c := strings.ToLower(strings.TrimSpace(getenv(EnvOTLPCompression))); c != "" {
		switch c {
		case "gzip", "zstd", "snappy", "deflate", "zlib", "none":
			f.Compression = c
		default:
			errs = append(errs, fmt.Errorf("%s=%q: want gzip, zstd, snappy, deflate, zlib or none", EnvOTLPCompression, c))
		}
	}

	scheme, rest, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		scheme, rest = "", raw
	}
	switch scheme {
	case "http":
		f.Insecure = true
	case "https":
		if insecure {
			errs = append(errs, fmt.Errorf("%s=true contradicts %s's https:// (use http:// for plaintext)", EnvOTLPInsecure, EnvOTLPEndpoint))
		}
	case "":
		f.Insecure = insecure
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want http://, https:// or host:port", EnvOTLPEndpoint, raw))
	}
	if f.Insecure && f.CAFile != "" {
		errs = append(errs, fmt.Errorf("%s is set but the endpoint is plaintext: use https:// (or host:port without %s)", EnvOTLPCAFile, EnvOTLPInsecure))
	}
	if f.CAFile != "" {
		if _, err := os.Stat(f.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvOTLPCAFile, err))
		}
	}
	hostport, path, _ := strings.Cut(rest, "/")
	if _, _, err := net.SplitHostPort(hostport); err != nil && !(f.HTTP && hasScheme && hostport != "") {
		// A URL's port may be implied (https://api.honeycomb.io); gRPC
		// wants it said.
		errs = append(errs, fmt.Errorf("%s=%q: want host:port after the scheme: %w", EnvOTLPEndpoint, raw, err))
	}
	switch {
	case !f.HTTP && strings.Trim(path, "/") != "":
		errs = append(errs, fmt.Errorf("%s=%q: OTLP gRPC takes host:port, no path (for OTLP HTTP set %s=http)", EnvOTLPEndpoint, raw, EnvOTLPProtocol))
	case !f.HTTP:
		f.Endpoint = hostport
	default:
		s := "https"
		if f.Insecure {
			s = "http"
		}
		u := s + "://" + hostport
		if p := strings.TrimRight(path, "/"); strings.HasSuffix(p, "v1/traces") {
			f.TracesEndpoint = u + "/" + p
		} else {
			f.Endpoint = u + strings.TrimSuffix("/"+p, "/")
		}
	}
	if h := strings.TrimSpace(getenv(EnvOTLPHeaders)); h != "" {
		for i, kv := range strings.Split(h, ",") {
			name, val, ok := strings.Cut(kv, "=")
			name = strings.TrimSpace(name)
			v, err := url.QueryUnescape(strings.TrimSpace(val))
			if !ok || !validHeaderName(name) || err != nil {
				// The entry may hold a token: name it by position only.
				errs = append(errs, fmt.Errorf("%s: entry %d is not name=value (URL-encoded value)", EnvOTLPHeaders, i+1))
				continue
			}
			f.Env = append(f.Env, headerEnv(len(f.Headers))+"="+v)
			f.Headers = append(f.Headers, strings.ToLower(name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fan-out to an OTLP backend: %w", err)
	}
	return f, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

// RenderFanoutConfig is a second collector config, merged over
// RenderCollectorConfig's (otelcol-loom --config a --config b): the
// fan-out exporter and a pipeline traces/fanout fed by the same otlp
// receiver. It adds and changes nothing in the Postgres pipeline.
//
// What must hold is that a slow, failing or unreachable backend never
// holds up Postgres or Loom. The receiver hands each request to both
// pipelines and answers Loom with their joined error, so the fan-out
// pipeline must never return one: a batch processor (which takes data
// and returns nil) in front of an exporter whose in-memory queue never
// blocks (block_on_overflow: false). When the backend cannot keep up, the
// queue fills and further spans are dropped, counted per exporter in the
// collector's own metrics (otelcol_exporter_enqueue_failed_spans_total,
// and otelcol_exporter_send_failed_spans_total for those that gave up
// retrying) and logged ("Sender failed"). No memory_limiter: it would
// refuse data, an error Loom would retry for Postgres's sake too; the
// queue's bound is the fan-out's memory bound. What the batch processor
// and the queue hold is lost on a SIGKILL: Postgres, the record, has it.
func RenderFanoutConfig(f *Fanout) []byte {
	var b strings.Builder
	q := strconv.Quote
	queue := f.QueueSpans
	if queue == 0 {
		queue = fanoutQueueSpans
	}
	kind := "otlp_grpc"
	if f.HTTP {
		kind = "otlphttp"
	}
	fmt.Fprintf(&b, "# Written by devstack (make run) on every start because %s is set; merged over\n", EnvOTLPEndpoint)
	fmt.Fprintf(&b, "# otelcol.yaml. Every span also goes to %s, without holding up Postgres:\n", f.Describe())
	fmt.Fprintf(&b, "# see devstack.RenderFanoutConfig. Drops show in the collector's metrics as exporter=%q.\n", f.ExporterID())
	fmt.Fprintf(&b, "processors:\n  batch/%s:\n    send_batch_size: 1000\n    send_batch_max_size: 5000\n    timeout: 1s\n", fanoutName)
	fmt.Fprintf(&b, "exporters:\n  %s/%s:\n", kind, fanoutName)
	if f.TracesEndpoint != "" {
		fmt.Fprintf(&b, "    traces_endpoint: %s\n", q(f.TracesEndpoint))
	} else {
		fmt.Fprintf(&b, "    endpoint: %s\n", q(f.Endpoint))
	}
	switch {
	case f.Insecure:
		fmt.Fprintf(&b, "    tls:\n      insecure: true # plaintext: %s is http:// or %s=true\n", EnvOTLPEndpoint, EnvOTLPInsecure)
	case f.CAFile != "":
		fmt.Fprintf(&b, "    tls:\n      ca_file: %s\n", q(f.CAFile))
	default:
		fmt.Fprintf(&b, "    tls:\n      insecure: false # TLS with the system's roots\n")
	}
	fmt.Fprintf(&b, "    compression: %s\n", f.Compression)
	if len(f.Headers) > 0 {
		fmt.Fprintf(&b, "    headers: # values from the environment (%s): never written here\n", EnvOTLPHeaders)
		for i, h := range f.Headers {
			fmt.Fprintf(&b, "      %s: %s\n", q(h), q("${env:"+headerEnv(i)+"}"))
		}
	}
	fmt.Fprintf(&b, `    timeout: 10s
    sending_queue:
      enabled: true
      num_consumers: 4
      sizer: items
      queue_size: %d
      block_on_overflow: false # full: drop and count, never push back on the receiver
    retry_on_failure:
      enabled: true
      initial_interval: 1s
      max_interval: 30s
      max_elapsed_time: 5m
service:
  pipelines:
    traces/%s:
      receivers: [otlp]
      processors: [batch/%s]
      exporters: [%s/%s]
`, queue, fanoutName, fanoutName, kind, fanoutName)
	return []byte(b.String())
}
