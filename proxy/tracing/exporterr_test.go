package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// testSpans returns spans made by the SDK, one of them named name.
func testSpans(t *testing.T, name string) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, s := tp.Tracer("t").Start(context.Background(), name)
	s.End()
	return rec.Ended()
}

// answer is what a fake OTLP/gRPC collector says to every export.
type answer struct {
	coltracepb.UnimplementedTraceServiceServer
	err     error
	partial *coltracepb.ExportTracePartialSuccess
}

func (a answer) Export(context.Context, *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if a.err != nil {
		return nil, a.err
	}
	return &coltracepb.ExportTraceServiceResponse{PartialSuccess: a.partial}, nil
}

// The errors come from the real OTLP exporters talking to a real gRPC
// server and a real HTTP server, so the test breaks if the exporters change
// how they wrap what the collector said.
func TestPermanent_RealExporters_TellRefusalsFromOutages(t *testing.T) {
	ctx := context.Background()
	grpcExport := func(t *testing.T, a answer, name string) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		coltracepb.RegisterTraceServiceServer(srv, a)
		go func() { _ = srv.Serve(ln) }()
		defer srv.Stop()
		exp, err := otlptrace.New(ctx, otlptracegrpc.NewClient(otlptracegrpc.WithEndpointURL("http://"+ln.Addr().String()),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithTimeout(5*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		defer exp.Shutdown(ctx)
		return exp.ExportSpans(ctx, testSpans(t, name))
	}
	httpExport := func(t *testing.T, status int, body []byte, name string) error {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(status)
			_, _ = w.Write(body)
		}))
		defer srv.Close()
		exp, err := otlptrace.New(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}), otlptracehttp.WithTimeout(5*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		defer exp.Shutdown(ctx)
		return exp.ExportSpans(ctx, testSpans(t, name))
	}
	partial, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{
		PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "bad span"}})
	for _, tc := range []struct {
		name            string
		export          func(t *testing.T) error
		permanent, part bool
	}{
		{"grpc InvalidArgument", func(t *testing.T) error {
			return grpcExport(t, answer{err: status.Error(codes.InvalidArgument, "bad data")}, "ok")
		}, true, false},
		{"grpc over the receive limit", func(t *testing.T) error {
			return grpcExport(t, answer{err: status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)")}, "ok")
		}, true, false},
		{"grpc local marshal of invalid UTF-8", func(t *testing.T) error { return grpcExport(t, answer{}, "POST /\xff") }, true, false},
		{"grpc Unavailable", func(t *testing.T) error {
			return grpcExport(t, answer{err: status.Error(codes.Unavailable, "collector restarting")}, "ok")
		}, false, false},
		{"grpc ResourceExhausted for memory", func(t *testing.T) error {
			return grpcExport(t, answer{err: status.Error(codes.ResourceExhausted, "data refused due to high memory usage")}, "ok")
		}, false, false},
		{"grpc partial success", func(t *testing.T) error {
			return grpcExport(t, answer{partial: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "bad"}}, "ok")
		}, false, true},
		{"http 400", func(t *testing.T) error {
			return httpExport(t, 400, []byte("proto: cannot parse invalid wire-format data"), "ok")
		}, true, false},
		{"http 413", func(t *testing.T) error { return httpExport(t, 413, nil, "ok") }, true, false},
		{"http local marshal of invalid UTF-8", func(t *testing.T) error { return httpExport(t, 200, nil, "POST /\xff") }, true, false},
		{"http 503", func(t *testing.T) error { return httpExport(t, 503, nil, "ok") }, false, false},
		{"http 500", func(t *testing.T) error { return httpExport(t, 500, nil, "ok") }, false, false},
		{"http partial success", func(t *testing.T) error { return httpExport(t, 200, partial, "ok") }, false, true},
		{"connection refused", func(t *testing.T) error {
			exp, _ := otlptrace.New(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL("http://127.0.0.1:1/v1/traces"),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})))
			return exp.ExportSpans(ctx, testSpans(t, "ok"))
		}, false, false},
		{"deadline", func(t *testing.T) error { return context.DeadlineExceeded }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.export(t)
			if err == nil {
				t.Fatal("export succeeded")
			}
			if got := permanent(err) && !partialSuccessOnly(err); got != tc.permanent {
				t.Errorf("permanent(%v) = %v, want %v", err, got, tc.permanent)
			}
			if got := partialSuccessOnly(err); got != tc.part {
				t.Errorf("partialSuccessOnly(%v) = %v, want %v", err, got, tc.part)
			}
		})
	}
	if partialSuccessOnly(errors.Join(errors.New("OTLP partial success: x (1 spans rejected)"), errors.New("boom"))) {
		t.Error("a partial success joined with a failure is not a success")
	}
}
