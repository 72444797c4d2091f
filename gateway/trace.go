package gateway

import (
	"context"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/warrenrpc/warren/core"
)

// traceOptions are the server options that trace the gateway's calls
// when t is enabled: OpenTelemetry's gRPC stats handler, whose server span
// (a child of the caller's traceparent, when it sent one) is the parent of
// the spans the core starts for the call. Health checks and reflection
// are not traced. None when t is not enabled.
func traceOptions(t core.Tracing) []grpc.ServerOption {
	if !t.Enabled() {
		return nil
	}
	h := otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.Provider),
		otelgrpc.WithPropagators(t.Propagation()),
		// The gRPC metrics are Prometheus's (Config.Metrics).
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(traced),
	)
	return []grpc.ServerOption{grpc.StatsHandler(serverEvents{h})}
}

// serverEvents hands otelgrpc's server handler only the events it reads
// on a server with no message events (WithMessageEvents, off by default):
// the headers received, for the server's address, and the end, which ends
// the span. It ignores the others, each of which would cost it two walks
// up the call's context for nothing, five times a call.
// TestServerEventsMakeTheSameSpans holds this to otelgrpc's behaviour.
type serverEvents struct{ stats.Handler }

func (h serverEvents) HandleRPC(ctx context.Context, s stats.RPCStats) {
	switch s.(type) {
	case *stats.InHeader, *stats.End:
		h.Handler.HandleRPC(ctx, s)
	}
}

// traced reports whether a call is traced: all but health and reflection.
func traced(info *stats.RPCTagInfo) bool {
	return !strings.HasPrefix(info.FullMethodName, "/grpc.health.") &&
		!strings.HasPrefix(info.FullMethodName, "/grpc.reflection.")
}
