package core

import (
	"context"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// viaPropagator is the span context OpenTelemetry's W3C propagator reads
// from h: what traceparentContext must give.
func viaPropagator(h amqp.Table) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), headers(h)))
}

var traceparents = []string{
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-04", // reserved flag in version 0
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
	"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra", // a later version may add fields
	"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
	"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
	"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"",
	"-",
	"garbage",
}

func TestTraceparentContextReadsAsThePropagator(t *testing.T) {
	t.Parallel()
	for _, tp := range traceparents {
		for _, ts := range []any{nil, "vendor=value,other=x", "not a tracestate", 42} {
			h := amqp.Table{"traceparent": tp}
			if ts != nil {
				h["tracestate"] = ts
			}
			if got, want := traceparentContext(headers(h)), viaPropagator(h); !got.Equal(want) {
				t.Errorf("traceparent %q, tracestate %v: got %v, want %v", tp, ts, got, want)
			}
		}
	}
	if got := traceparentContext(headers(amqp.Table{"traceparent": []byte(traceparents[0])})); !got.Equal(viaPropagator(amqp.Table{"traceparent": traceparents[0]})) {
		t.Errorf("a byte-array traceparent: got %v, want it read as the string", got)
	}
	if got := traceparentContext(headers(amqp.Table{"traceparent": int32(1)})); got.IsValid() {
		t.Errorf("a traceparent that is not a string: got %v, want none", got)
	}
}

func FuzzTraceparentContext(f *testing.F) {
	for _, tp := range traceparents {
		f.Add(tp, "")
	}
	f.Add(traceparents[0], "vendor=value")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		h := amqp.Table{"traceparent": tp, "tracestate": ts}
		if got, want := traceparentContext(headers(h)), viaPropagator(h); !got.Equal(want) {
			t.Errorf("traceparent %q, tracestate %q: got %v, want %v", tp, ts, got, want)
		}
	})
}

// A link reads the reply's context without allocating a context for it.
func TestLinkReadsWithoutContexts(t *testing.T) {
	h := headers{"traceparent": traceparents[0]}
	if n := testing.AllocsPerRun(100, func() { _ = traceparentContext(h) }); n != 0 {
		t.Errorf("allocs per read = %v, want 0", n)
	}
}
