package gateway

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/test/bufconn"
)

// spansOf serves health with h's stats handler (made by wrap from
// otelgrpc's server handler), makes a successful unary call, a failing one
// and a server-streaming one, and returns the spans otelgrpc made.
func spansOf(t *testing.T, wrap func(stats.Handler) stats.Handler) []tracetest.SpanStub {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer(grpc.StatsHandler(wrap(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp)))))
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return lis.Dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := healthpb.NewHealthClient(conn)
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); err == nil {
		t.Fatal("Check of an unknown service succeeded")
	}
	wctx, wcancel := context.WithCancel(ctx)
	w, err := c.Watch(wctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	wcancel()
	for len(exp.GetSpans()) < 3 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	return exp.GetSpans()
}

// What a span says, without its ids and times.
type spanSummary struct {
	name   string
	kind   string
	attrs  []string
	status string
	events []string
	links  int
}

func summarize(ss []tracetest.SpanStub) []spanSummary {
	var out []spanSummary
	for _, s := range ss {
		sum := spanSummary{name: s.Name, kind: s.SpanKind.String(), status: s.Status.Code.String() + ": " + s.Status.Description, links: len(s.Links)}
		for _, a := range s.Attributes {
			sum.attrs = append(sum.attrs, string(a.Key)+"="+a.Value.String())
		}
		slices.Sort(sum.attrs)
		for _, e := range s.Events {
			set := attribute.NewSet(e.Attributes...)
			sum.events = append(sum.events, e.Name+" "+set.Encoded(attribute.DefaultEncoder()))
		}
		out = append(out, sum)
	}
	// In an order of their own: two spans may differ only in their
	// attributes (the two Checks, OK and NOT_FOUND).
	slices.SortFunc(out, func(a, b spanSummary) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	return out
}

// serverEvents leaves out only events otelgrpc does nothing with: the
// spans are the same as with otelgrpc's handler alone.
func TestServerEventsMakeTheSameSpans(t *testing.T) {
	t.Parallel()
	want := summarize(spansOf(t, func(h stats.Handler) stats.Handler { return h }))
	got := summarize(spansOf(t, func(h stats.Handler) stats.Handler { return serverEvents{h} }))
	if len(want) != 3 {
		t.Fatalf("otelgrpc alone made %d spans, want 3: %+v", len(want), want)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d spans, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.name != w.name || g.kind != w.kind || g.status != w.status || g.links != w.links ||
			!slices.Equal(g.attrs, w.attrs) || !slices.Equal(g.events, w.events) {
			t.Errorf("span %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}
