package core_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// recorder is an in-memory exporter behind a tracer provider that exports
// each span as it ends.
type recorder struct {
	exp *tracetest.InMemoryExporter
	tp  *sdktrace.TracerProvider
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &recorder{exp: exp, tp: tp}
}

// traced returns a Supervisor on the test broker that traces into r.
func (r *recorder) traced(t *testing.T) *core.Supervisor {
	return core.NewSupervisor(core.Config{
		URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(),
		Logger: warrentest.QuietLog, Tracing: core.Tracing{Provider: r.tp},
	})
}

// named returns the ended spans called name.
func (r *recorder) named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range r.exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// wait waits until n spans called name ended, and returns them.
func (r *recorder) wait(t *testing.T, name string, n int) []tracetest.SpanStub {
	t.Helper()
	warrentest.Eventually(t, 10*time.Second, "spans "+name, func() bool { return len(r.named(name)) >= n })
	spans := r.named(name)
	if len(spans) != n {
		t.Fatalf("got %d spans %q, want %d", len(spans), name, n)
	}
	return spans
}

func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

// wantAttrs fails unless s has every attribute of want.
func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[attribute.Key]string) {
	t.Helper()
	for k, v := range want {
		if got := attr(s, k); got != v {
			t.Errorf("span %q: attribute %s = %q, want %q", s.Name, k, got, v)
		}
	}
}

func linked(s tracetest.SpanStub, to trace.SpanContext) bool {
	for _, l := range s.Links {
		if l.SpanContext.TraceID() == to.TraceID() && l.SpanContext.SpanID() == to.SpanID() {
			return true
		}
	}
	return false
}

// TestTraceOfACall: a Client's call and the Server's handling of it are
// one trace: the caller's span, and the request's consumer span on the
// worker, its child, whose context (and the caller's baggage) the handler
// gets. The reply carries the consumer span's context, which the caller
// does not link to: it is of the caller's own trace, its child already. A
// call has no span of its own. A handler's error is the status of the
// consumer span.
func TestTraceOfACall(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	rec := newRecorder(t)
	tenants := make(chan string, 2)
	ssup := rec.traced(t)
	core.NewServer(ssup, core.ServerConfig{Queue: core.QueueSpec{Name: queue}, Logger: warrentest.QuietLog},
		core.HandlerFunc(func(ctx context.Context, d *amqp.Delivery) (amqp.Publishing, error) {
			if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
				return amqp.Publishing{}, errors.New("no span in the handler's context")
			}
			tenants <- baggage.FromContext(ctx).Member("tenant").Value()
			if string(d.Body) == "bad" {
				return amqp.Publishing{}, core.Argumentf("bad body")
			}
			return amqp.Publishing{Body: d.Body}, nil
		}))
	run(t, ssup)
	csup := rec.traced(t)
	client := core.NewClient(csup, core.ClientConfig{})
	client.Watch(queue)
	run(t, csup)

	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx, caller := rec.tp.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bag), "caller")
	d, err := client.Call(ctx, queue, amqp.Publishing{Body: []byte("ok")})
	if err != nil || string(d.Body) != "ok" {
		t.Fatalf("call: %q, %v; want ok", d.Body, err)
	}
	replyParent, _ := d.Headers["traceparent"].(string)
	_, err = client.Call(ctx, queue, amqp.Publishing{Body: []byte("bad")})
	if code := status.Code(core.Status(err)); code != codes.InvalidArgument {
		t.Fatalf("bad call: %v, want INVALID_ARGUMENT", err)
	}
	caller.End()
	for range 2 {
		if got := <-tenants; got != "acme" {
			t.Errorf("the handler's baggage: tenant = %q, want acme", got)
		}
	}

	callers := rec.wait(t, "caller", 1)
	processes := rec.wait(t, "process "+queue, 2)
	if len(callers[0].Links) != 0 {
		t.Errorf("the caller's span: links %v, want none (the process spans are its children)", callers[0].Links)
	}
	if want := "00-" + processes[0].SpanContext.TraceID().String() + "-" + processes[0].SpanContext.SpanID().String() + "-01"; replyParent != want {
		t.Errorf("the reply's traceparent is %q, want the process span's, %q", replyParent, want)
	}
	if len(rec.exp.GetSpans()) != 3 {
		t.Errorf("%d spans, want 3: a call has no span of its own", len(rec.exp.GetSpans()))
	}
	for i, process := range processes {
		if process.Parent.SpanID() != caller.SpanContext().SpanID() || process.SpanContext.TraceID() != caller.SpanContext().TraceID() || !process.Parent.IsRemote() {
			t.Errorf("call %d: the process span's parent is %v, want the caller's span %v (remote)", i, process.Parent.SpanID(), caller.SpanContext().SpanID())
		}
		if process.SpanKind != trace.SpanKindConsumer {
			t.Errorf("call %d: kind %v, want consumer", i, process.SpanKind)
		}
		wantAttrs(t, process, map[attribute.Key]string{
			"messaging.system": "rabbitmq", "messaging.operation.type": "process",
			"messaging.destination.name": queue, "messaging.rabbitmq.destination.routing_key": queue,
			"messaging.rabbitmq.message.delivery_tag": strconv.Itoa(i + 1), // the calls are in turn
		})
		if attr(process, "messaging.message.conversation_id") == "" {
			t.Errorf("call %d: no conversation id", i)
		}
	}
	if s := processes[0]; s.Status.Code != otelcodes.Unset {
		t.Errorf("the good call's span: status %v, want unset", s.Status)
	}
	if s := processes[1]; s.Status.Code != otelcodes.Error || attr(s, "error.type") != "InvalidArgument" {
		t.Errorf("the bad call's span: status %v, error.type %q; want Error, InvalidArgument", s.Status, attr(s, "error.type"))
	}
}

// TestTraceOfForeignRequests: requests from a client that is not warren's
// (the tutorials' send no trace headers; others send garbage) are served,
// each under a span of a trace of its own, whose context the reply
// carries back; a valid traceparent from such a client is the parent.
func TestTraceOfForeignRequests(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	rec := newRecorder(t)
	sup := rec.traced(t)
	core.NewServer(sup, core.ServerConfig{Queue: core.QueueSpec{Name: queue}, Logger: warrentest.QuietLog},
		core.HandlerFunc(func(_ context.Context, d *amqp.Delivery) (amqp.Publishing, error) {
			return amqp.Publishing{Body: d.Body}, nil
		}))
	run(t, sup)

	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		name    string
		headers amqp.Table
		parent  bool // the traceparent is valid
	}{
		{name: "none"},
		{name: "empty", headers: amqp.Table{}},
		{name: "garbage", headers: amqp.Table{"traceparent": "00-zzzz-not-a-trace", "tracestate": "=,=", "baggage": "%%%;;=="}},
		{name: "zero ids", headers: amqp.Table{"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"}},
		{name: "long", headers: amqp.Table{"traceparent": strings.Repeat("0", 20000), "tracestate": strings.Repeat("a=b,", 10000)}},
		{name: "not strings", headers: amqp.Table{"traceparent": int64(7), "tracestate": amqp.Table{"a": "b"}, "baggage": []any{"x"}}},
		{name: "bytes", headers: amqp.Table{"traceparent": []byte(valid)}, parent: true},
		{name: "valid", headers: amqp.Table{"traceparent": valid}, parent: true},
	}
	replyParents := map[string]string{} // the reply's traceparent, by case
	ch := brokertest.Channel(t)
	replies, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{
			ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: c.name, Headers: c.headers, Body: []byte(c.name),
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-replies:
			if string(d.Body) != c.name {
				t.Fatalf("%s: reply %q, want %q", c.name, d.Body, c.name)
			}
			tp, _ := d.Headers["traceparent"].(string)
			replyParents[c.name] = tp
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no reply", c.name)
		}
	}
	spans := rec.wait(t, "process "+queue, len(cases))
	for i, c := range cases {
		s := spans[i]
		if got := attr(s, "messaging.message.conversation_id"); got != c.name {
			t.Fatalf("span %d is of request %q, want %q", i, got, c.name)
		}
		if !s.SpanContext.IsValid() {
			t.Errorf("%s: the span's context is not valid", c.name)
		}
		if want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"; replyParents[c.name] != want {
			t.Errorf("%s: the reply's traceparent is %q, want the process span's, %q", c.name, replyParents[c.name], want)
		}
		if c.parent {
			if got := s.Parent.TraceID().String() + "-" + s.Parent.SpanID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7" {
				t.Errorf("%s: parent %s, want the traceparent's", c.name, got)
			}
		} else if s.Parent.IsValid() {
			t.Errorf("%s: parent %v, want none (a trace of its own)", c.name, s.Parent)
		}
	}
}

// TestTraceOfForeignReplies: a worker that is not warren's replies with
// no trace headers, or garbage: the call succeeds, and the caller's span
// has no link. One that replies with a valid context (its own trace) gets
// the caller's span linked to it.
func TestTraceOfForeignReplies(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	ch := declare(t, queue)
	requests, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	const foreign = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	headers := []amqp.Table{nil, {"traceparent": "garbage"}, {"traceparent": int32(1)}, {"traceparent": foreign}}
	go func() {
		i := 0
		for d := range requests {
			_ = ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, amqp.Publishing{
				CorrelationId: d.CorrelationId, Headers: headers[i%len(headers)], Body: d.Body,
			})
			i++
		}
	}()
	rec := newRecorder(t)
	sup := rec.traced(t)
	client := core.NewClient(sup, core.ClientConfig{})
	run(t, sup)
	for range headers {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ctx, caller := rec.tp.Tracer("test").Start(ctx, "caller")
		d, err := client.Call(ctx, queue, amqp.Publishing{Body: []byte("x")})
		caller.End()
		cancel()
		if err != nil || string(d.Body) != "x" {
			t.Fatalf("call: %q, %v; want x", d.Body, err)
		}
	}
	for i, s := range rec.wait(t, "caller", len(headers)) {
		if i < len(headers)-1 {
			if len(s.Links) != 0 {
				t.Errorf("reply %v: the caller's span has links %v, want none", headers[i], s.Links)
			}
			continue
		}
		if len(s.Links) != 1 || s.Links[0].SpanContext.TraceID().String()+"-"+s.Links[0].SpanContext.SpanID().String() != "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7" {
			t.Errorf("reply with a valid traceparent: the caller's span has links %v, want the reply's context", s.Links)
		}
	}
}

// TestTraceOfPublishingsAndSubscriptions: a Publisher's publishing is a
// producer span, the child of the caller's, ended by the confirm; a
// Subscription hands each delivery to its client under a span that is
// the child of the subscription's context and linked to the publishing.
// The caller's headers are left as they were. A span's name carries only
// names the Supervisor knows.
func TestTraceOfPublishingsAndSubscriptions(t *testing.T) {
	t.Parallel()
	exchange := brokertest.Name(t, "logs")
	if err := brokertest.Channel(t).ExchangeDeclare(exchange, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	sup := rec.traced(t)
	sup.Known(exchange)
	pub := core.NewPublisher(sup, core.PublisherConfig{})
	subs := core.NewSubscriber(sup)
	run(t, sup)
	tr := rec.tp.Tracer("test")

	sctx, stream := tr.Start(context.Background(), "stream")
	sub, err := subs.Subscribe(sctx, core.SubscriptionConfig{Bindings: []core.Binding{{Exchange: exchange}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	got := make(chan string, n)
	done := make(chan error, 1)
	go func() {
		done <- sub.Stream(func(d *amqp.Delivery) error {
			got <- string(d.Body)
			return nil
		})
	}()
	mine := amqp.Table{"x-mine": "yes"}
	var emits []trace.SpanContext
	for i := range n {
		ctx, emit := tr.Start(context.Background(), "emit")
		err := pub.Publish(ctx, &core.Message{Exchange: exchange, RoutingKey: "k", Publishing: amqp.Publishing{Headers: mine, Body: []byte{byte('a' + i)}}})
		emit.End()
		if err != nil {
			t.Fatal(err)
		}
		emits = append(emits, emit.SpanContext())
	}
	if len(mine) != 1 {
		t.Errorf("the caller's headers became %v", mine)
	}
	// An exchange the Supervisor does not know is not in a span's name.
	if err := pub.Publish(context.Background(), &core.Message{Exchange: "amq.topic", RoutingKey: "a.b"}); err != nil {
		t.Fatal(err)
	}
	if s := rec.wait(t, "publish", 1)[0]; attr(s, "messaging.destination.name") != "amq.topic:a.b" {
		t.Errorf("publishing to amq.topic: destination %q, want amq.topic:a.b", attr(s, "messaging.destination.name"))
	}
	for range n {
		<-got
	}
	sub.Close()
	<-done
	stream.End()

	publishes := rec.wait(t, "publish "+exchange, n)
	delivers := rec.wait(t, "deliver "+exchange, n)
	for i := range n {
		p, d := publishes[i], delivers[i]
		if p.Parent.SpanID() != emits[i].SpanID() || p.SpanContext.TraceID() != emits[i].TraceID() {
			t.Errorf("publishing %d: parent %v, want the emit span %v", i, p.Parent.SpanID(), emits[i].SpanID())
		}
		if p.SpanKind != trace.SpanKindProducer || p.Status.Code != otelcodes.Unset {
			t.Errorf("publishing %d: kind %v, status %v; want producer, unset", i, p.SpanKind, p.Status)
		}
		wantAttrs(t, p, map[attribute.Key]string{
			"messaging.system": "rabbitmq", "messaging.destination.name": exchange + ":k",
			"messaging.rabbitmq.destination.routing_key": "k",
		})
		if d.Parent.SpanID() != stream.SpanContext().SpanID() || d.SpanContext.TraceID() != stream.SpanContext().TraceID() {
			t.Errorf("delivery %d: parent %v, want the stream's span", i, d.Parent.SpanID())
		}
		if !linked(d, p.SpanContext) {
			t.Errorf("delivery %d: links %v, want the publishing's span %v", i, d.Links, p.SpanContext.SpanID())
		}
	}
}

// TestTracingOff: without a tracer provider, or with a no-op one, nothing
// is traced and no trace header is written.
func TestTracingOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tr   core.Tracing
	}{
		{"zero", core.Tracing{}},
		{"noop", core.Tracing{Provider: noop.NewTracerProvider()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.tr.Enabled() {
				t.Fatal("Enabled() = true, want false")
			}
			queue := brokertest.Name(t, "rpc")
			ch := declare(t, queue)
			sup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Logger: warrentest.QuietLog, Tracing: tc.tr})
			pub := core.NewPublisher(sup, core.PublisherConfig{})
			run(t, sup)
			if err := pub.Publish(context.Background(), &core.Message{RoutingKey: queue, Publishing: amqp.Publishing{Body: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
			warrentest.Eventually(t, 10*time.Second, "the publishing", func() bool {
				d, ok, err := ch.Get(queue, true)
				if err != nil {
					t.Fatal(err)
				}
				if ok && len(d.Headers) != 0 {
					t.Fatalf("headers %v, want none", d.Headers)
				}
				return ok
			})
		})
	}
}
