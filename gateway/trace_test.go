package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// spans indexes the spans a test's in-memory exporter holds.
type spans struct {
	all    []tracetest.SpanStub
	byID   map[trace.SpanID]tracetest.SpanStub
	byName map[string][]tracetest.SpanStub
}

func index(all []tracetest.SpanStub) *spans {
	s := &spans{all: all, byID: map[trace.SpanID]tracetest.SpanStub{}, byName: map[string][]tracetest.SpanStub{}}
	for _, sp := range all {
		s.byID[sp.SpanContext.SpanID()] = sp
		s.byName[sp.Name] = append(s.byName[sp.Name], sp)
	}
	return s
}

// children are the spans called name whose parent is parent.
func (s *spans) children(parent tracetest.SpanStub, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, sp := range s.byName[name] {
		if sp.Parent.SpanID() == parent.SpanContext.SpanID() && sp.SpanContext.TraceID() == parent.SpanContext.TraceID() {
			out = append(out, sp)
		}
	}
	return out
}

// child is the one span called name whose parent is parent.
func (s *spans) child(t *testing.T, parent tracetest.SpanStub, name string) tracetest.SpanStub {
	t.Helper()
	c := s.children(parent, name)
	if len(c) != 1 {
		t.Fatalf("span %q (trace %s): %d children %q, want 1", parent.Name, parent.SpanContext.TraceID(), len(c), name)
	}
	return c[0]
}

func linksTo(sp tracetest.SpanStub, to tracetest.SpanStub) bool {
	for _, l := range sp.Links {
		if l.SpanContext.SpanID() == to.SpanContext.SpanID() && l.SpanContext.TraceID() == to.SpanContext.TraceID() {
			return true
		}
	}
	return false
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestTracesAcrossGatewayAndWorkers serves Fibonacci, Tasks and Logs in a
// gateway whose core and gRPC server trace into an in-memory exporter, with
// a Fibonacci worker and a task consumer tracing into it too, and makes 50
// calls of each kind. Every call is a trace of its own: the gateway's
// server span (the child of the caller's traceparent when it sent one),
// the core's producer span its child (a publishing's; an RPC has none),
// and the worker's consumer span the child of either, with the caller's
// baggage in the worker's context; an RPC's reply links the server span
// to the worker's; every delivery to a
// subscription (a log, a task's QUEUED event) is a span under the
// subscription's server span, linked to the publishing's. Half the calls
// send no trace headers, as the tutorials' clients do, and are served
// all the same; so are raw AMQP requests with none, or with garbage.
func TestTracesAcrossGatewayAndWorkers(t *testing.T) {
	t.Parallel()
	const n = 50
	rpcQueue, taskQueue := brokertest.Name(t, "rpc"), brokertest.Name(t, "tasks")
	events, logs := brokertest.Name(t, "events"), brokertest.Name(t, "logs")
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracing := core.Tracing{Provider: tp}

	warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{Tracing: tracing}},
		fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: rpcQueue, Logger: quietLog}))
	// The task worker; it records the baggage each task came with.
	taskBaggage := make(chan string, n)
	taskWorker := warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{Tracing: tracing}},
		tasksvc.NewWorker(tasksvc.WorkerConfig{
			Queue: taskQueue, EventsExchange: events, Logger: quietLog,
			Handler: func(ctx context.Context, _ []byte) error {
				taskBaggage <- baggage.FromContext(ctx).Member("tenant").Value()
				return nil
			},
		}))
	brokertest.WaitConsumers(t, taskQueue, 1)

	gw := warrentest.StartGateway(t, gateway.Config{AMQP: core.Config{Tracing: tracing}},
		fibsvc.New(fibsvc.Config{Queue: rpcQueue}),
		tasksvc.New(tasksvc.Config{Queue: taskQueue, EventsExchange: events, Logger: quietLog}),
		logsvc.New(logsvc.Config{
			FanoutExchange: logs, DirectExchange: brokertest.Name(t, "direct"), TopicExchange: brokertest.Name(t, "topic"),
			Logger: quietLog,
		}))
	fib := warrenv1.NewFibonacciServiceClient(gw.Conn)
	tasks := warrenv1.NewTaskServiceClient(gw.Conn)
	logClient := warrenv1.NewLogServiceClient(gw.Conn)
	health := healthpb.NewHealthClient(gw.Conn) // not traced
	waitFor(t, "FibonacciService SERVING", func() bool {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "warren.v1.FibonacciService"})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})

	// callCtx is the context of call i: baggage always; a traceparent of
	// the caller's for even calls, whose trace id it returns.
	callCtx := func(ctx context.Context, i int) (context.Context, string) {
		ctx = metadata.AppendToOutgoingContext(ctx, "baggage", "tenant=acme")
		if i%2 == 1 {
			return ctx, ""
		}
		traceID := randomHex(t, 16)
		return metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+traceID+"-"+randomHex(t, 8)+"-01"), traceID
	}
	// callers[method] are the trace ids the callers sent.
	var mu sync.Mutex
	callers := map[string]map[string]bool{}
	sent := func(method, traceID string) {
		mu.Lock()
		defer mu.Unlock()
		if callers[method] == nil {
			callers[method] = map[string]bool{}
		}
		if traceID != "" {
			callers[method][traceID] = true
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Open the watcher and the log subscription first.
	watch, err := tasks.WatchTasks(ctx, &warrenv1.WatchTasksRequest{})
	if err == nil {
		_, err = watch.Header()
	}
	if err != nil {
		t.Fatalf("WatchTasks: %v", err)
	}
	sub, err := logClient.SubscribeLogs(ctx, &warrenv1.SubscribeLogsRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_FANOUT})
	if err == nil {
		_, err = sub.Header()
	}
	if err != nil {
		t.Fatalf("SubscribeLogs: %v", err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				cctx, traceID := callCtx(ctx, i)
				sent("Fibonacci", traceID)
				resp, err := fib.Fibonacci(cctx, &warrenv1.FibonacciRequest{N: 10})
				if err == nil && resp.GetValue() != "55" {
					err = fmt.Errorf("fib(10) = %s, want 55", resp.GetValue())
				}
				if err != nil {
					errs <- fmt.Errorf("Fibonacci %d: %w", i, err)
				}
				cctx, traceID = callCtx(ctx, i)
				sent("SubmitTask", traceID)
				if _, err := tasks.SubmitTask(cctx, &warrenv1.SubmitTaskRequest{Body: "task " + strconv.Itoa(i)}); err != nil {
					errs <- fmt.Errorf("SubmitTask %d: %w", i, err)
				}
				cctx, traceID = callCtx(ctx, i)
				sent("EmitLog", traceID)
				if _, err := logClient.EmitLog(cctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_FANOUT, Body: "log " + strconv.Itoa(i)}); err != nil {
					errs <- fmt.Errorf("EmitLog %d: %w", i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	for i := range n {
		if _, err := sub.Recv(); err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
	}
	// Each task's QUEUED (the gateway's), STARTED and SUCCEEDED (the
	// worker's).
	for i := range 3 * n {
		if _, err := watch.Recv(); err != nil {
			t.Fatalf("task event %d: %v", i, err)
		}
	}
	for range n {
		if got := <-taskBaggage; got != "acme" {
			t.Errorf("a task's baggage: tenant = %q, want acme", got)
		}
	}

	// Raw AMQP requests to the Fibonacci worker: no headers, or garbage.
	ch := brokertest.Channel(t)
	replies, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []amqp.Table{nil, {"traceparent": "00-garbage", "baggage": ";;;"}, {"traceparent": int64(1)}} {
		if err := ch.PublishWithContext(ctx, "", rpcQueue, false, false, amqp.Publishing{ReplyTo: "amq.rabbitmq.reply-to", Headers: h, Body: []byte("10")}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-replies:
			if string(d.Body) != "55" {
				t.Errorf("raw request with headers %v: reply %q, want 55", h, d.Body)
			}
		case <-ctx.Done():
			t.Fatalf("raw request with headers %v: no reply", h)
		}
	}

	// Stop the task worker: its events' publishings are confirmed, and
	// their spans end, when it stops at the latest (it waits for their
	// confirms in batches). End the streams, whose server spans end with
	// them.
	taskWorker.Stop()
	cancel()
	waitFor(t, "the streams' server spans", func() bool {
		s := index(exp.GetSpans())
		return len(s.byName["warren.v1.TaskService/WatchTasks"]) == 1 && len(s.byName["warren.v1.LogService/SubscribeLogs"]) == 1
	})
	s := index(exp.GetSpans())

	// checkServer checks the server spans of method: n of them, each in a
	// trace of its own, the child of the caller's traceparent when it sent
	// one, a root when it did not.
	checkServer := func(method string) []tracetest.SpanStub {
		t.Helper()
		servers := s.byName[method]
		if len(servers) != n {
			t.Fatalf("%d server spans %q, want %d", len(servers), method, n)
		}
		traces := map[trace.TraceID]bool{}
		fromCaller := 0
		for _, sp := range servers {
			traces[sp.SpanContext.TraceID()] = true
			if sp.SpanKind != trace.SpanKindServer {
				t.Errorf("%s: span kind %v, want server", method, sp.SpanKind)
			}
			switch {
			case callers[methodName(method)][sp.SpanContext.TraceID().String()]:
				fromCaller++
				if !sp.Parent.IsValid() || !sp.Parent.IsRemote() {
					t.Errorf("%s: a caller's traceparent is not the server span's parent (%v)", method, sp.Parent)
				}
			case sp.Parent.IsValid():
				t.Errorf("%s: a call without traceparent has parent %v, want none", method, sp.Parent)
			}
		}
		if len(traces) != n || fromCaller != n/2 {
			t.Errorf("%s: %d traces, %d from the callers' traceparent; want %d, %d", method, len(traces), fromCaller, n, n/2)
		}
		return servers
	}

	// RPC: server → process (the worker's); no link back, as the request
	// carried the server span's context.
	for _, srv := range checkServer("warren.v1.FibonacciService/Fibonacci") {
		process := s.child(t, srv, "process "+rpcQueue)
		if !process.Parent.IsRemote() || process.SpanKind != trace.SpanKindConsumer {
			t.Errorf("Fibonacci: process span: remote parent %v, kind %v; want true, consumer", process.Parent.IsRemote(), process.SpanKind)
		}
		if len(srv.Links) != 0 {
			t.Errorf("Fibonacci: the server span has links %v, want none: the worker's span is its child, and the reply carries no context", srv.Links)
		}
	}

	// Tasks: server → publish (the task) → process (the task worker) →
	// publish (its STARTED and SUCCEEDED events); server → publish (its
	// QUEUED event); each event's publishing linked from the watcher's
	// delivery of it.
	watchSrv := s.byName["warren.v1.TaskService/WatchTasks"][0]
	eventDeliveries := s.children(watchSrv, "deliver "+events)
	if len(eventDeliveries) != 3*n {
		t.Fatalf("%d deliveries of task events under WatchTasks' span, want %d", len(eventDeliveries), 3*n)
	}
	linked := func(what string, publish tracetest.SpanStub) {
		linkedFrom := 0
		for _, d := range eventDeliveries {
			if linksTo(d, publish) {
				linkedFrom++
			}
		}
		if linkedFrom != 1 {
			t.Errorf("SubmitTask: the %s event's publishing is linked from %d deliveries, want 1", what, linkedFrom)
		}
	}
	for _, srv := range checkServer("warren.v1.TaskService/SubmitTask") {
		publish := s.child(t, srv, "publish "+taskQueue)
		process := s.child(t, publish, "process "+taskQueue)
		linked("QUEUED", s.child(t, srv, "publish "+events))
		worker := s.children(process, "publish "+events)
		if len(worker) != 2 {
			t.Errorf("SubmitTask: %d event publishings under the task worker's span, want 2 (STARTED, SUCCEEDED)", len(worker))
		}
		for _, p := range worker {
			linked("worker's", p)
		}
	}

	// Logs: server → publish; the subscription's delivery links to it.
	subSrv := s.byName["warren.v1.LogService/SubscribeLogs"][0]
	logDeliveries := s.children(subSrv, "deliver "+logs)
	if len(logDeliveries) != n {
		t.Fatalf("%d deliveries of logs under SubscribeLogs' span, want %d", len(logDeliveries), n)
	}
	for _, srv := range checkServer("warren.v1.LogService/EmitLog") {
		publish := s.child(t, srv, "publish "+logs)
		linkedFrom := 0
		for _, d := range logDeliveries {
			if linksTo(d, publish) {
				linkedFrom++
			}
		}
		if linkedFrom != 1 {
			t.Errorf("EmitLog: the publishing is linked from %d deliveries, want 1", linkedFrom)
		}
	}

	// The raw requests: served under spans of traces of their own.
	roots := 0
	for _, sp := range s.byName["process "+rpcQueue] {
		if !sp.Parent.IsValid() {
			roots++
		}
	}
	if roots != 3 {
		t.Errorf("%d worker spans without a parent, want 3 (the raw requests)", roots)
	}
}

// methodName is the method of a full gRPC method name.
func methodName(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			return full[i+1:]
		}
	}
	return full
}
