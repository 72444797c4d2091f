package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
	"github.com/warrenrpc/warren/metrics"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// names are the entities of one test's gateway.
type names struct {
	rpc, tasks, events, logs string
}

func newNames(t testing.TB) names {
	return names{
		rpc:    brokertest.Name(t, "rpc"),
		tasks:  brokertest.Name(t, "tasks"),
		events: brokertest.Name(t, "events"),
		logs:   brokertest.Name(t, "logs"),
	}
}

// start serves a gateway with FibonacciService, TaskService and
// LogService, and a Fibonacci worker, both counting into one Metrics
// registered with a registry of the test's own, as warren dev does.
func start(t testing.TB, n names) (*prometheus.Registry, *warrentest.Gateway) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{Metrics: m}},
		fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: n.rpc, Logger: warrentest.QuietLog}))
	g := warrentest.StartGateway(t, gateway.Config{Metrics: m},
		fibsvc.New(fibsvc.Config{Queue: n.rpc}),
		tasksvc.New(tasksvc.Config{Queue: n.tasks, EventsExchange: n.events}),
		logsvc.New(logsvc.Config{FanoutExchange: n.logs, DirectExchange: n.logs + ".direct", TopicExchange: n.logs + ".topic"}),
	)
	return reg, g
}

// ctxFor is a context for the test's calls, cancelled when it ends, with
// a deadline of d.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestMetricsOfCallsThroughTheGateway makes calls through a gateway and
// its worker and reads what they counted: the gRPC server metrics, the
// publishings, replies and confirms of the core on the gateway, the
// worker's deliveries, a subscription, and both connections.
func TestMetricsOfCallsThroughTheGateway(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	reg, g := start(t, n)
	ctx := ctxFor(t, 30*time.Second)
	fib := warrenv1.NewFibonacciServiceClient(g.Conn)

	fibCalls := func(code codes.Code) float64 {
		return value(t, reg, "grpc_server_handled_total", map[string]string{
			"grpc_type": "unary", "grpc_service": "warren.v1.FibonacciService", "grpc_method": "Fibonacci", "grpc_code": code.String(),
		})
	}
	if got := fibCalls(codes.OK); got != 0 {
		t.Fatalf("grpc_server_handled_total before any call = %v, want 0 (initialized)", got)
	}
	for i := range 3 {
		if _, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: uint32(10 + i)}); err != nil {
			t.Fatalf("Fibonacci: %v", err)
		}
	}
	_, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 100001})
	warrentest.WantCode(t, err, codes.InvalidArgument)

	rpc := map[string]string{"queue": n.rpc}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"grpc_server_started_total", map[string]string{"grpc_method": "Fibonacci"}, 4},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Fibonacci", "grpc_code": "OK"}, 3},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Fibonacci", "grpc_code": "InvalidArgument"}, 1},
		{"grpc_server_handling_seconds", map[string]string{"grpc_method": "Fibonacci"}, 4},
		// The too large n is refused before anything is published.
		{"warren_amqp_published_total", map[string]string{"exchange": "", "queue": n.rpc}, 3},
		{"warren_amqp_reply_seconds", rpc, 3},
		{"warren_amqp_calls_pending", rpc, 0},
		{"warren_amqp_replies_dropped_total", nil, 0},
		{"warren_worker_handled_total", map[string]string{"queue": n.rpc, "code": "OK"}, 3},
		{"warren_worker_handling_seconds", rpc, 3},
		{"warren_worker_in_flight", rpc, 0},
		{"warren_amqp_connection_up", map[string]string{"connection": "warren-test-" + t.Name()}, 1},
		{"warren_amqp_connection_up", map[string]string{"connection": "warren-test-worker-" + t.Name()}, 1},
	}
	for _, tt := range tests {
		if got := value(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}

	// A task to a queue nobody declared comes back: returned, and the
	// broker acked it; once the queue exists it is confirmed.
	tasks := warrenv1.NewTaskServiceClient(g.Conn)
	_, err = tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x"})
	warrentest.WantCode(t, err, codes.Unavailable)
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(n.tasks, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "y"}); err != nil {
		t.Fatalf("SubmitTask: %v", err)
	}
	task := map[string]string{"exchange": "", "queue": n.tasks}
	for _, tt := range []struct {
		name string
		want float64
	}{
		{"warren_amqp_published_total", 2},
		{"warren_amqp_returned_total", 1},
		{"warren_amqp_confirm_seconds", 2},
	} {
		if got := value(t, reg, tt.name, task); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, task, got, tt.want)
		}
	}
	if got := value(t, reg, "warren_amqp_confirms_total", map[string]string{"queue": n.tasks, "outcome": "ack"}); got != 2 {
		t.Errorf("warren_amqp_confirms_total{queue=%q,outcome=ack} = %v, want 2", n.tasks, got)
	}

	// A subscription is open while its stream is, and counted as ended
	// after the client cancelled it.
	open := map[string]string{"exchange": n.logs, "queue": ""}
	sctx, cancel := context.WithCancel(ctx)
	stream, err := warrenv1.NewLogServiceClient(g.Conn).SubscribeLogs(sctx, &warrenv1.SubscribeLogsRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_FANOUT})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 5*time.Second, "the subscription counted as open", func() bool {
		return value(t, reg, "warren_amqp_subscriptions_open", open) == 1
	})
	cancel()
	closed := map[string]string{"exchange": n.logs, "reason": "ended"}
	warrentest.Eventually(t, 5*time.Second, "the subscription counted as ended", func() bool {
		return value(t, reg, "warren_amqp_subscriptions_open", open) == 0 &&
			value(t, reg, "warren_amqp_subscriptions_closed_total", closed) == 1
	})
}
