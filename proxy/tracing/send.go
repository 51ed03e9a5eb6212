package tracing

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/loom-gateway/loom/proxy/config"
)

// sender delivers one encoded ExportTraceServiceRequest to the collector.
// The spool holds calls already encoded as OTLP protobuf, and concatenated
// ResourceSpans are a valid request: nothing is decoded or re-encoded on
// the way out.
type sender interface {
	// send returns nil once the collector has the batch (a partial success
	// included: what it rejected it would reject again), a *refusal when
	// it refuses the data itself, or any other error for a failure worth
	// retrying.
	send(ctx context.Context, req []byte) (rejected int64, err error)
	close() error
}

// refusal is the collector refusing the data itself (malformed, too large):
// sending the same bytes again can never succeed.
type refusal struct{ reason string }

func (r *refusal) Error() string { return "collector refused the batch: " + r.reason }

func refused(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

func newSender(cfg config.Tracing) (sender, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("tracing: no endpoint configured")
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tracing: endpoint %q is not a URL", cfg.Endpoint)
	}
	if cfg.Protocol == config.TracingHTTP {
		return &httpSender{
			url: httpTracesURL(cfg.Endpoint), headers: cfg.Headers,
			client: &http.Client{Timeout: cfg.ExportTimeout},
		}, nil
	}
	creds := insecure.NewCredentials()
	if u.Scheme == "https" {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP/gRPC client for %s: %w", cfg.Endpoint, err)
	}
	md := metadata.New(cfg.Headers)
	return &grpcSender{conn: conn, md: md, timeout: cfg.ExportTimeout}, nil
}

// httpTracesURL gives an OTLP/HTTP endpoint without a path the standard
// /v1/traces: posting to "/" gets a 404 from collectors.
func httpTracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// rawCodec hands already-encoded protobuf to gRPC as it is, and decodes
// the collector's answer with the real OTLP types. Its name is "proto" so
// the collector reads the request with its own protobuf codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(rawRequest); ok {
		return b, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return proto.Marshal(m)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data, m)
}

func (rawCodec) Name() string { return "proto" }

// rawRequest is an encoded ExportTraceServiceRequest.
type rawRequest []byte

type grpcSender struct {
	conn    *grpc.ClientConn
	md      metadata.MD
	timeout time.Duration
}

const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

func (s *grpcSender) send(ctx context.Context, req []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, s.md), s.timeout)
	defer cancel()
	var resp coltracepb.ExportTraceServiceResponse
	err := s.conn.Invoke(ctx, exportMethod, rawRequest(req), &resp)
	if err == nil {
		return resp.GetPartialSuccess().GetRejectedSpans(), nil
	}
	st, _ := status.FromError(err)
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		return 0, &refusal{"gRPC InvalidArgument: " + msg}
	case codes.ResourceExhausted:
		// Also sent by a collector short of memory (retry then); only a
		// message over the receive limit is for good.
		if strings.Contains(msg, "larger than max") || strings.Contains(msg, "too large") {
			return 0, &refusal{"gRPC ResourceExhausted: " + msg}
		}
	case codes.Internal:
		// The collector's codec failing on this data.
		if strings.Contains(msg, "unmarshal") {
			return 0, &refusal{"gRPC Internal: " + msg}
		}
	}
	return 0, fmt.Errorf("OTLP/gRPC export: %w", err)
}

func (s *grpcSender) close() error { return s.conn.Close() }

type httpSender struct {
	url     string
	headers map[string]string
	client  *http.Client
}

// maxAnswer bounds what is read of a collector's answer: it is untrusted.
const maxAnswer = 64 << 10

func (s *httpSender) send(ctx context.Context, req []byte) (int64, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(req))
	if err != nil {
		return 0, err
	}
	r.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range s.headers {
		r.Header.Set(k, v)
	}
	resp, err := s.client.Do(r)
	if err != nil {
		return 0, fmt.Errorf("OTLP/HTTP export: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	switch {
	case resp.StatusCode == http.StatusOK:
		var answer coltracepb.ExportTraceServiceResponse
		if proto.Unmarshal(body, &answer) != nil {
			return 0, nil // delivered; an answer we cannot read says nothing of rejects
		}
		return answer.GetPartialSuccess().GetRejectedSpans(), nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge:
		// 400: the collector could not decode it; 413: over its limit.
		return 0, &refusal{"HTTP " + strconv.Itoa(resp.StatusCode) + ": " + snippet(body)}
	}
	// 429, 502, 503, 504 are retryable by the spec; anything else may be a
	// collector or proxy having a bad day, and retrying costs only time.
	return 0, fmt.Errorf("OTLP/HTTP export: %s: %s", resp.Status, snippet(body))
}

func (s *httpSender) close() error { s.client.CloseIdleConnections(); return nil }

// snippet is the start of an untrusted answer, fit for a log line.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		b = b[:n]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
