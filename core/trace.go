package core

import (
	"context"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TracerName is the instrumentation scope of the core's spans.
const TracerName = "github.com/warrenrpc/warren/core"

// Tracing configures the core's OpenTelemetry traces. The zero value
// traces nothing, and costs nothing: no span is started and no header is
// read or written.
//
// With a Provider, the core traces every publishing and delivery, once,
// for every service built on it:
//
//   - Publisher.Publish and PublishDeferred start a producer span,
//     "publish {destination}", a child of the caller's context, which ends
//     with the confirm (Confirmation.Wait), and write its context into the
//     publishing's headers (traceparent, tracestate, baggage: the W3C
//     formats by default). Client.Call and CallStream write the caller's
//     context (the gateway's gRPC span) into the request's: a request,
//     the hottest path warren has, costs no span of its own.
//   - Consumer (under Server, the worker SDK and the task routes) reads
//     that context from each delivery and handles the delivery under a
//     consumer span, "process {queue}", its child; the span's status is
//     the delivery's outcome (SetOutcome). A delivery without the headers,
//     or with headers that do not parse, starts a trace of its own.
//   - Server writes the consumer span's context into its replies, as into
//     every publishing. The Client links the caller's span to a reply's
//     context only when it is of another trace (a worker that started a
//     trace of its own): in the caller's trace, the reply's span is
//     already the caller's child or descendant, and a link would say it
//     twice.
//   - Subscription hands each delivery to its client under a consumer
//     span, "deliver {exchange}", the child of the subscription's context
//     (the gRPC stream's span) and linked to the publishing's context.
//
// The attributes follow OpenTelemetry's messaging conventions for
// RabbitMQ (messaging.system "rabbitmq", messaging.destination.name
// "{exchange}:{routing key}", the routing key, the correlation id as the
// conversation id). A span's name carries a queue or exchange name only
// when the Supervisor knows it (Supervisor.Known), as the metrics' labels
// do, so names from requests never multiply span names.
type Tracing struct {
	// Provider makes the core's tracer (TracerName). Default: nil, no
	// tracing; a no-op provider (trace/noop) is the same.
	Provider trace.TracerProvider
	// Propagator writes a span's context into a publishing's headers and
	// reads it from a delivery's. Default: W3C trace context and baggage.
	Propagator propagation.TextMapPropagator
}

// Enabled reports whether t traces anything.
func (t Tracing) Enabled() bool {
	if t.Provider == nil {
		return false
	}
	_, nop := t.Provider.(noop.TracerProvider)
	return !nop
}

// Propagation is t's Propagator, or the default: W3C trace context and
// baggage.
func (t Tracing) Propagation() propagation.TextMapPropagator {
	if t.Propagator != nil {
		return t.Propagator
	}
	return defaultPropagator
}

var defaultPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// tracer is a Supervisor's Tracing, as its components use it. With no
// Provider, on is false and they skip every call.
type tracer struct {
	on   bool
	tr   trace.Tracer
	prop propagation.TextMapPropagator
	w3c  bool   // prop is the default, W3C trace context and baggage
	mt   *meter // for the names the Supervisor knows

	mu    sync.Mutex
	names atomic.Pointer[map[spanKey]string] // span names made so far; copied on write
}

type spanKey struct{ operation, name string }

func newTracer(t Tracing, mt *meter) *tracer {
	if !t.Enabled() {
		return &tracer{mt: mt}
	}
	return &tracer{on: true, tr: t.Provider.Tracer(TracerName), prop: t.Propagation(), w3c: t.Propagator == nil, mt: mt}
}

// headers is an AMQP header table as the propagators read and write it.
// Only string (and byte array) values are read: a foreign client's header
// of another type under a propagator's key is no context.
type headers amqp.Table

func (h headers) Get(key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func (h headers) Set(key, value string) { h[key] = value }

func (h headers) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// destination is messaging.destination.name for RabbitMQ: "{exchange}:
// {routing key}", or whichever of the two is not empty, or "amq.default".
func destination(exchange, key string) string {
	switch {
	case exchange != "" && key != "":
		return exchange + ":" + key
	case exchange != "":
		return exchange
	case key != "":
		return key
	}
	return "amq.default"
}

// spanName is "{operation} {name}" when the Supervisor knows name, else
// the operation alone. The names are made once: there are as many as the
// operations times the names the Supervisor knows.
func (t *tracer) spanName(operation, name string) string {
	if name == "" || t.mt.name(name) != name {
		return operation
	}
	k := spanKey{operation, name}
	if names := t.names.Load(); names != nil {
		if n, ok := (*names)[k]; ok {
			return n
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := map[spanKey]string{}
	if old := t.names.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	n := operation + " " + name
	next[k] = n
	t.names.Store(&next)
	return n
}

// send starts the producer span of a publishing of p to exchange with
// routing key key, as operation ("publish"), and writes its context into
// a copy of p's headers, so the caller's table is never changed. It
// returns the span; call it only when t.on.
func (t *tracer) send(ctx context.Context, operation, exchange, key string, p *amqp.Publishing) trace.Span {
	name := key
	if exchange != "" {
		name = exchange
	}
	attrs := append(make([]attribute.KeyValue, 0, 7),
		semconv.MessagingSystemRabbitMQ,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName(operation),
		semconv.MessagingDestinationName(destination(exchange, key)),
	)
	attrs = messageAttrs(attrs, key, p.CorrelationId, p.MessageId)
	ctx, span := t.tr.Start(ctx, t.spanName(operation, name),
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	p.Headers = withContext(ctx, t.prop, p.Headers)
	return span
}

func messageAttrs(attrs []attribute.KeyValue, key, correlationID, messageID string) []attribute.KeyValue {
	if key != "" {
		attrs = append(attrs, semconv.MessagingRabbitMQDestinationRoutingKey(key))
	}
	if correlationID != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(correlationID))
	}
	if messageID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(messageID))
	}
	return attrs
}

// call writes the context of a Client's caller (ctx: the gateway's gRPC
// span) into its request's headers, own, and returns the caller's span,
// to link to the reply; nil when ctx has no recording span. A call has no
// span of its own: the caller's covers it, and a request is the hottest
// path warren has. Call it only when t.on.
func (t *tracer) call(ctx context.Context, p *amqp.Publishing) trace.Span {
	t.prop.Inject(ctx, headers(p.Headers))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		return span
	}
	return nil
}

// inject writes ctx's span context into p's headers: a new table, so a
// table the handler shares between replies is never changed. Call it
// only when t.on.
func (t *tracer) inject(ctx context.Context, p *amqp.Publishing) {
	p.Headers = withContext(ctx, t.prop, p.Headers)
}

// withContext is a copy of h with ctx's context written into it.
func withContext(ctx context.Context, prop propagation.TextMapPropagator, h amqp.Table) amqp.Table {
	c := make(amqp.Table, len(h)+3)
	for k, v := range h {
		c[k] = v
	}
	prop.Inject(ctx, headers(c))
	return c
}

// extract returns ctx with the context d's headers carry (its span
// context as the remote parent, its baggage), or ctx when they carry
// none that parses.
func (t *tracer) extract(ctx context.Context, d *amqp.Delivery) context.Context {
	if len(d.Headers) == 0 {
		return ctx
	}
	return t.prop.Extract(ctx, headers(d.Headers))
}

// receiveAttrs are the attributes of a consumer span of d. At most eight,
// as a publishing's: the SDK's de-duplication of a span's attributes costs
// more above that.
func receiveAttrs(operation string, d *amqp.Delivery) []attribute.KeyValue {
	attrs := append(make([]attribute.KeyValue, 0, 8),
		semconv.MessagingSystemRabbitMQ,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName(operation),
		semconv.MessagingDestinationName(destination(d.Exchange, d.RoutingKey)),
		semconv.MessagingRabbitMQMessageDeliveryTag(int(d.DeliveryTag)),
	)
	return messageAttrs(attrs, d.RoutingKey, d.CorrelationId, d.MessageId)
}

// process starts the consumer span of a Consumer's delivery d of queue:
// the child of the context d carries. Call it only when t.on.
func (t *tracer) process(ctx context.Context, queue string, d *amqp.Delivery) (context.Context, trace.Span) {
	return t.tr.Start(t.extract(ctx, d), t.spanName("process", queue),
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(receiveAttrs("process", d)...))
}

// deliver starts the consumer span of a Subscription's delivery d to its
// client: the child of ctx (the subscription's), linked to the context d
// carries. Call it only when t.on.
func (t *tracer) deliver(ctx context.Context, name string, d *amqp.Delivery) trace.Span {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(receiveAttrs("deliver", d)...),
	}
	if sc := trace.SpanContextFromContext(t.extract(context.Background(), d)); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	_, span := t.tr.Start(ctx, t.spanName("deliver", name), opts...)
	return span
}

// link links span to the context a reply's headers carry, when it is of
// another trace than span's: a context in span's own trace names a span
// that trace already holds (under span, when the worker continued the
// caller's context, as warren's do), and a link would say it twice.
func (t *tracer) link(span trace.Span, h amqp.Table) {
	if span == nil || len(h) == 0 {
		return
	}
	if sc := t.remote(h); sc.IsValid() && sc.TraceID() != span.SpanContext().TraceID() {
		span.AddLink(trace.Link{SpanContext: sc})
	}
}

// remote is the span context h carries, as the propagator reads it. With
// the default propagator it is read from the headers directly
// (traceparentContext), without the two contexts an Extract allocates
// for a link, which has no use for them.
func (t *tracer) remote(h amqp.Table) trace.SpanContext {
	if t.w3c {
		return traceparentContext(headers(h))
	}
	return trace.SpanContextFromContext(t.prop.Extract(context.Background(), headers(h)))
}

// end ends span (nil: none) with err as its status.
func end(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		code := status.Code(Status(err))
		span.SetAttributes(semconv.ErrorTypeKey.String(code.String()))
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
}

// endCode ends a consumer's span with the delivery's outcome.
func endCode(span trace.Span, code codes.Code) {
	if code != codes.OK {
		span.SetAttributes(semconv.ErrorTypeKey.String(code.String()))
		span.SetStatus(otelcodes.Error, code.String())
	}
	span.End()
}
