package metrics_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
	"github.com/warrenrpc/warren/metrics"
	"github.com/warrenrpc/warren/queuesvc"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// flood is how many random method names a test sends.
const flood = 10000

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// invokeRandom calls flood random methods on conn, eight at a time: half
// of unknown services, half unknown methods of FibonacciService. Each
// must fail with UNIMPLEMENTED.
func invokeRandom(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	// A bound on the whole flood, generous for a loaded machine with -race.
	ctx := ctxFor(t, 5*time.Minute)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < flood; i += 8 {
				method := "/warren.v1.Random" + randomHex(4) + "/M" + randomHex(4)
				if i%2 == 1 {
					method = "/warren.v1.FibonacciService/M" + randomHex(4)
				}
				err := conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
				if status.Code(err) != codes.Unimplemented {
					t.Errorf("%s: %v, want UNIMPLEMENTED", method, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSeriesStayBoundedUnderRandomNames floods a gateway with random
// method names, task ids, routing keys and queue names, after one call of
// each kind, and shows that the count of series does not grow and that no
// random name became a label value.
func TestSeriesStayBoundedUnderRandomNames(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	randomQueues := brokertest.Name(t, "random") // its cleanup deletes every queue named random.*
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
		queuesvc.New(queuesvc.Config{Logger: warrentest.QuietLog}),
		logsvc.New(logsvc.Config{FanoutExchange: n.logs, DirectExchange: n.logs + ".direct", TopicExchange: n.logs + ".topic"}),
	)
	if _, err := brokertest.Channel(t).QueueDeclare(n.tasks, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 2*time.Minute)
	fib := warrenv1.NewFibonacciServiceClient(g.Conn)
	tasks := warrenv1.NewTaskServiceClient(g.Conn)
	queues := warrenv1.NewQueueServiceClient(g.Conn)
	logs := warrenv1.NewLogServiceClient(g.Conn)
	calls := func(tasksN, logsN, queuesN int) {
		t.Helper()
		if _, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 7}); err != nil {
			t.Fatalf("Fibonacci: %v", err)
		}
		for range tasksN {
			if _, err := tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "t", IdempotencyKey: randomHex(8)}); err != nil {
				t.Fatalf("SubmitTask: %v", err)
			}
		}
		for range logsN {
			key := "k" + randomHex(4) + "." + randomHex(4)
			if _, err := logs.EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: key, Body: "b"}); err != nil {
				t.Fatalf("EmitLog: %v", err)
			}
		}
		for range queuesN {
			if _, err := queues.Send(ctx, &warrenv1.SendRequest{Queue: randomQueues + "." + randomHex(4), Body: "b"}); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
	}
	calls(1, 1, 1)
	warm := series(t, reg)

	invokeRandom(t, g.Conn)
	calls(200, 1000, 20)
	if got := series(t, reg); got != warm {
		t.Errorf("%d series after the flood, %d before: want no new series", got, warm)
	}
	const registered = (1 + 1 + 1 + 1) + (1 + 200 + 1000 + 20) // the calls of registered methods
	if got := value(t, reg, "grpc_server_started_total", nil); got != registered {
		t.Errorf("grpc_server_started_total = %v, want %d: the calls of registered methods only", got, registered)
	}
	allowed := map[string]bool{"": true, core.Other: true, n.rpc: true, n.tasks: true, n.logs + ".topic": true}
	for _, l := range []string{"queue", "exchange"} {
		for v := range labelValues(t, reg, "warren_amqp_published_total", l) {
			if !allowed[v] {
				t.Errorf("warren_amqp_published_total has %s=%q, a name warren was not configured with", l, v)
			}
		}
	}
	if got := value(t, reg, "warren_amqp_published_total", map[string]string{"exchange": "", "queue": core.Other}); got != 21 {
		t.Errorf("publishings to the random queues counted under %s: %v, want 21", core.Other, got)
	}
}

// TestUnknownMethodsCountAsOther: with an UnknownServiceHandler, grpc-go
// runs the interceptors for methods nobody registered; the metrics count
// them all under _OTHER.
func TestUnknownMethodsCountAsOther(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(m.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.StreamServerInterceptor()),
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
			return status.Error(codes.Unimplemented, "nobody here")
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	m.InitializeServer(srv)
	lis := bufconn.Listen(1 << 20)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(lis) })
	defer func() { srv.Stop(); wg.Wait() }()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	before := series(t, reg)
	invokeRandom(t, conn)
	after := series(t, reg)
	// The first unknown call adds its _OTHER series: started, handled
	// with its code, the histogram, the messages received.
	if after-before > 4 {
		t.Errorf("%d series after %d random methods, %d before: want at most 4 new (_OTHER's)", after, flood, before)
	}
	if got := value(t, reg, "grpc_server_handled_total", map[string]string{"grpc_service": "_OTHER", "grpc_method": "_OTHER", "grpc_code": "Unimplemented"}); got != flood {
		t.Errorf("calls counted under _OTHER = %v, want %d", got, flood)
	}
	for v := range labelValues(t, reg, "grpc_server_handled_total", "grpc_service") {
		if v != "_OTHER" && v != "grpc.health.v1.Health" {
			t.Errorf("grpc_service=%q, want only registered services and _OTHER", v)
		}
	}
}
