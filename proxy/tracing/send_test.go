package tracing

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/loom-gateway/loom/proxy/config"
)

// answer is what a fake OTLP/gRPC collector says to every export; it keeps
// what it got.
type answer struct {
	coltracepb.UnimplementedTraceServiceServer
	err     error
	partial *coltracepb.ExportTracePartialSuccess
	got     chan *coltracepb.ExportTraceServiceRequest
	md      chan metadata.MD
}

func (a answer) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if a.got != nil {
		a.got <- req
		md, _ := metadata.FromIncomingContext(ctx)
		a.md <- md
	}
	if a.err != nil {
		return nil, a.err
	}
	return &coltracepb.ExportTraceServiceResponse{PartialSuccess: a.partial}, nil
}

// encodedCall is one call encoded as the spool holds it.
func encodedCall(t *testing.T, route string) []byte {
	t.Helper()
	r := streamedChat()
	r.HTTPRoute = route
	return newEncoder("test", "inst-1").appendCall(nil, r, callIDs{Seq: 1, Run: "run"})
}

// The real gRPC and HTTP senders against real servers: the collector gets
// the spool's bytes as a request it decodes, with the configured headers,
// and each answer is told apart as delivered, partly rejected, refused for
// good (split the batch) or failed for now (retry).
func TestSender_RealServers_DeliverAndTellRefusalsFromOutages(t *testing.T) {
	ctx := context.Background()
	req := append(encodedCall(t, "/v1/chat/completions"), encodedCall(t, "/v1/embeddings")...)
	grpcSend := func(t *testing.T, a answer, body []byte) (int64, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		coltracepb.RegisterTraceServiceServer(srv, a)
		go func() { _ = srv.Serve(ln) }()
		defer srv.Stop()
		cfg := config.DefaultTracing
		cfg.Endpoint, cfg.ExportTimeout = "http://"+ln.Addr().String(), 5*time.Second
		cfg.Headers = map[string]string{"x-token": "t0ken"}
		s, err := newSender(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		return s.send(ctx, body)
	}
	httpSend := func(t *testing.T, status int, answer []byte, body []byte) (int64, error) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("x-token") != "t0ken" {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(status)
			_, _ = w.Write(answer)
		}))
		defer srv.Close()
		cfg := config.DefaultTracing
		cfg.Endpoint, cfg.Protocol, cfg.ExportTimeout = srv.URL, config.TracingHTTP, 5*time.Second
		cfg.Headers = map[string]string{"x-token": "t0ken"}
		s, err := newSender(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		return s.send(ctx, body)
	}

	t.Run("grpc delivers the bytes as a request", func(t *testing.T) {
		a := answer{got: make(chan *coltracepb.ExportTraceServiceRequest, 1), md: make(chan metadata.MD, 1)}
		if _, err := grpcSend(t, a, req); err != nil {
			t.Fatal(err)
		}
		got := <-a.got
		if len(got.ResourceSpans) != 2 || len(got.ResourceSpans[0].ScopeSpans[0].Spans) != 2 {
			t.Fatalf("collector got %v", got)
		}
		if md := <-a.md; len(md.Get("x-token")) != 1 || md.Get("x-token")[0] != "t0ken" {
			t.Errorf("headers: %v", md)
		}
	})

	partial, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{
		PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "bad span"}})
	for _, tc := range []struct {
		name     string
		send     func(t *testing.T) (int64, error)
		ok       bool
		refused  bool
		rejected int64
	}{
		{"grpc ok", func(t *testing.T) (int64, error) { return grpcSend(t, answer{}, req) }, true, false, 0},
		{"grpc partial success", func(t *testing.T) (int64, error) {
			return grpcSend(t, answer{partial: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3}}, req)
		}, true, false, 3},
		{"grpc InvalidArgument", func(t *testing.T) (int64, error) {
			return grpcSend(t, answer{err: status.Error(codes.InvalidArgument, "bad data")}, req)
		}, false, true, 0},
		{"grpc over the receive limit", func(t *testing.T) (int64, error) {
			return grpcSend(t, answer{err: status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)")}, req)
		}, false, true, 0},
		{"grpc invalid UTF-8 refused by the server's codec", func(t *testing.T) (int64, error) {
			// Past the encoder's cleaning: bytes edited after encoding.
			bad := bytes.ReplaceAll(encodedCall(t, "/XXXX"), []byte("XXXX"), []byte("\xff\xff\xff\xff"))
			return grpcSend(t, answer{}, append(bad, req...))
		}, false, true, 0},
		{"grpc Unavailable", func(t *testing.T) (int64, error) {
			return grpcSend(t, answer{err: status.Error(codes.Unavailable, "collector restarting")}, req)
		}, false, false, 0},
		{"grpc ResourceExhausted for memory", func(t *testing.T) (int64, error) {
			return grpcSend(t, answer{err: status.Error(codes.ResourceExhausted, "data refused due to high memory usage")}, req)
		}, false, false, 0},
		{"http ok", func(t *testing.T) (int64, error) { return httpSend(t, 200, nil, req) }, true, false, 0},
		{"http partial success", func(t *testing.T) (int64, error) { return httpSend(t, 200, partial, req) }, true, false, 3},
		{"http 400", func(t *testing.T) (int64, error) {
			return httpSend(t, 400, []byte("proto: cannot parse invalid wire-format data"), req)
		}, false, true, 0},
		{"http 413", func(t *testing.T) (int64, error) { return httpSend(t, 413, nil, req) }, false, true, 0},
		{"http 503", func(t *testing.T) (int64, error) { return httpSend(t, 503, nil, req) }, false, false, 0},
		{"http 500", func(t *testing.T) (int64, error) { return httpSend(t, 500, nil, req) }, false, false, 0},
		{"connection refused", func(t *testing.T) (int64, error) {
			cfg := config.DefaultTracing
			cfg.Endpoint, cfg.Protocol, cfg.ExportTimeout = "http://127.0.0.1:1", config.TracingHTTP, time.Second
			s, _ := newSender(cfg)
			return s.send(ctx, req)
		}, false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rejected, err := tc.send(t)
			if (err == nil) != tc.ok || refused(err) != tc.refused || rejected != tc.rejected {
				t.Fatalf("got rejected=%d err=%v (refused %v); want ok %v, refused %v, rejected %d",
					rejected, err, refused(err), tc.ok, tc.refused, tc.rejected)
			}
		})
	}
}

func TestHTTPTracesURL_DefaultsThePath(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":              "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":             "http://127.0.0.1:4318/v1/traces",
		"https://otel.example.com/v1/traces": "https://otel.example.com/v1/traces",
		"https://otel.example.com/custom":    "https://otel.example.com/custom",
	} {
		if got := httpTracesURL(in); got != want {
			t.Errorf("httpTracesURL(%q) = %q, want %q", in, got, want)
		}
	}
}
