package tracing

import (
	"context"
	"net"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/loom-gateway/loom/proxy/call"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// sdkRef is the reference the encoder is checked against: the SDK path as
// it was before the encoder (spans.go's Tracer.Record and tracing.New's
// provider), exporting through the real otlptracegrpc exporter into an
// in-process OTLP/gRPC trace service. It keeps the SDK in tests only; it
// needs spans.go's appendServer, appendClient (and through them
// appendContent), serverName, clientName, statusMessage and upstreamFailed.
type sdkRef struct {
	tracer   trace.Tracer
	instance string
	srv      *traceService
}

// traceService is an OTLP/gRPC collector that keeps every request.
type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
}

func (s *traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, proto.Clone(req).(*coltracepb.ExportTraceServiceRequest))
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// take returns and forgets the requests received so far.
func (s *traceService) take() []*coltracepb.ExportTraceServiceRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

func newSDKRef(t testing.TB, serviceVersion, instance string) *sdkRef {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &traceService{}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(lis.Addr().String()), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	// As tracing.New set it up, but exporting each span as it ends, so that
	// a record's spans have arrived when sdkRecord returns.
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String(sa.ServiceName, sa.ServiceNameLoom),
			attribute.String(sa.ServiceVersion, call.Clean(serviceVersion, maxShort)),
			attribute.String(sa.ServiceInstanceID, instance),
		)),
	)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &sdkRef{tracer: tp.Tracer(scopeName), instance: instance, srv: srv}
}

// record is spans.go's Tracer.Record as it was, with the call numbered seq;
// it returns the OTLP requests the exporter sent for the call.
func (s *sdkRef) record(r *call.Record, seq int64) []*coltracepb.ExportTraceServiceRequest {
	ctx := context.Background()
	if len(r.TraceParent) > 0 {
		ctx = propagation.TraceContext{}.Extract(ctx, traceParent(r.TraceParent))
	}
	ctx, server := s.tracer.Start(ctx, serverName(r),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(r.Start), trace.WithAttributes(appendServer(nil, r, seq, s.instance)...))
	if r.Status >= 500 || r.Outcome == call.OutcomeClientGone || r.Outcome == call.OutcomeUpstreamFailed {
		server.SetStatus(codes.Error, statusMessage(r))
	}
	if !r.UpstreamStart.IsZero() {
		_, client := s.tracer.Start(ctx, clientName(r),
			trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(r.UpstreamStart), trace.WithAttributes(appendClient(nil, r, seq, s.instance)...))
		if upstreamFailed(r) {
			client.SetStatus(codes.Error, statusMessage(r))
		}
		end := r.UpstreamEnd
		if end.IsZero() {
			end = r.End
		}
		client.End(trace.WithTimestamp(end))
	}
	server.End(trace.WithTimestamp(r.End))
	return s.srv.take()
}

// spansOf flattens requests into their spans, each with its resource and
// scope spans.
type sdkSpan struct {
	rs   *tracepb.ResourceSpans
	ss   *tracepb.ScopeSpans
	span *tracepb.Span
}

func spansOf(reqs []*coltracepb.ExportTraceServiceRequest) []sdkSpan {
	var out []sdkSpan
	for _, req := range reqs {
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out = append(out, sdkSpan{rs, ss, sp})
				}
			}
		}
	}
	return out
}
