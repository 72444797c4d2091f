package bench

// The production benchmark: Fibonacci and SubmitTask through a gateway
// with what production turns on (metrics, traces at 100% sampling, token
// authentication) next to one with all of it off, in the same run.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/metrics"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// discardSpans is a span exporter that drops what it is given: the
// tracing measured is warren's instrumentation and the OpenTelemetry SDK
// (spans made, sampled, ended, batched), not a backend's transport.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// prodTarget is a gateway, with its Fibonacci worker, serving
// FibonacciService and TaskService on loopback TCP, with production's
// features all on or all off.
type prodTarget struct {
	fib   warrenv1.FibonacciServiceClient
	tasks warrenv1.TaskServiceClient
	close func()
}

// startProduction starts a prodTarget on queues named after prefix.
func startProduction(url, prefix string, on bool) (*prodTarget, error) {
	amqpCfg := core.Config{URLs: []string{url}}
	gcfg := gateway.Config{Logger: quiet}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var dialOpts []grpc.DialOption
	if on {
		m, err := metrics.New(prometheus.NewRegistry())
		if err != nil {
			return nil, err
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(discardSpans{}))
		closers = append(closers, func() { _ = tp.Shutdown(context.Background()) })
		amqpCfg.Metrics, amqpCfg.Tracing = m, core.Tracing{Provider: tp}
		gcfg.Metrics = m
		var (
			cleanup func()
			aerr    error
		)
		gcfg, dialOpts, cleanup, aerr = withTokenAuth(gcfg, dialOpts)
		if aerr != nil {
			closeAll()
			return nil, aerr
		}
		closers = append(closers, cleanup)
	}
	wcfg := amqpCfg
	wcfg.Name = "warren-bench-worker-" + prefix
	stop, err := runGroup(worker.NewGroup(worker.Config{AMQP: wcfg, Logger: quiet},
		fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: prefix + ".rpc", QueueType: core.QueueClassic})), "worker")
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, stop)

	gcfg.AMQP = amqpCfg
	gcfg.AMQP.Name = "warren-bench-gateway-" + prefix
	srv := gateway.New(gcfg, []gateway.Service{
		fibsvc.New(fibsvc.Config{Queue: prefix + ".rpc"}),
		tasksvc.New(tasksvc.Config{Queue: prefix + ".tasks", EventsExchange: prefix + ".events"}),
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		closeAll()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, lis); close(done) }()
	closers = append(closers, func() { cancel(); <-done })
	conn, err := grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dialOpts...)...)
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, func() { _ = conn.Close() })
	t := &prodTarget{fib: warrenv1.NewFibonacciServiceClient(conn), tasks: warrenv1.NewTaskServiceClient(conn), close: closeAll}
	for range 500 {
		if t.callFib(context.Background()) == nil {
			return t, nil
		}
		sleep()
	}
	closeAll()
	return nil, errors.New("production gateway did not start answering")
}

func (t *prodTarget) callFib(ctx context.Context) error {
	resp, err := t.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: benchN})
	if err == nil && resp.GetValue() != "832040" {
		err = fmt.Errorf("fib(30) = %q", resp.GetValue())
	}
	return err
}

func (t *prodTarget) submit(ctx context.Context) error {
	_, err := t.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: string(taskBody)})
	return err
}

// Production runs Fibonacci and SubmitTask at concurrency 64 through a
// gateway with metrics, traces (every call sampled, spans batched to an
// exporter that drops them) and token authentication on, and through
// one with them off, alternating in every round, and prints both and
// their ratio (the target: at least 0.90).
func Production(ctx context.Context, w io.Writer, o Options) error {
	o = o.withDefaults()
	prefix := fmt.Sprintf("warren.bench.production.%d", os.Getpid())
	off, on := prefix+".off", prefix+".on"
	defer deleteEntities(o.URL, off, off+".rpc")
	defer deleteEntities(o.URL, on, on+".rpc")
	conn, err := amqp.Dial(o.URL)
	if err != nil {
		return err
	}
	defer conn.Close()
	admin, err := conn.Channel()
	if err != nil {
		return err
	}
	for _, q := range []string{off + ".tasks", on + ".tasks"} {
		if _, err := admin.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return err
		}
	}
	targets := map[bool]*prodTarget{}
	for _, setting := range []bool{false, true} {
		prefix := off
		if setting {
			prefix = on
		}
		t, err := startProduction(o.URL, prefix, setting)
		if err != nil {
			return err
		}
		defer t.close()
		targets[setting] = t
	}

	fmt.Fprintf(w, "\nProduction benchmark: metrics, traces (100%% sampled) and token auth on, against all off, concurrency 64, %v per measurement, %d rounds, medians\n", o.Duration, o.Rounds)
	name := map[bool]string{false: "off", true: "on"}
	type key struct {
		method string
		on     bool
	}
	results := map[key][]Result{}
	for round := range o.Rounds {
		for _, method := range []string{"Fibonacci", "SubmitTask"} {
			for _, setting := range []bool{false, true} {
				call := targets[setting].callFib
				if method == "SubmitTask" {
					call = targets[setting].submit
				}
				r := load(ctx, 64, o.Duration, call)
				if r.Err != nil {
					return fmt.Errorf("%s, all %s: %w", method, name[setting], r.Err)
				}
				if method == "SubmitTask" {
					if _, err := admin.QueuePurge(map[bool]string{false: off, true: on}[setting]+".tasks", false); err != nil {
						return err
					}
				}
				results[key{method, setting}] = append(results[key{method, setting}], r)
				fmt.Fprintf(w, "  round %d  %-10s all %-3s %9.0f calls/s  p50 %8v  %5.1f allocs, %6.0f B per call\n",
					round+1, method, name[setting], r.Rate, r.P50.Round(time.Microsecond), r.Allocs, r.Bytes)
			}
		}
	}
	for _, method := range []string{"Fibonacci", "SubmitTask"} {
		var ratios []float64
		for i := range o.Rounds {
			ratios = append(ratios, results[key{method, true}][i].Rate/results[key{method, false}][i].Rate)
		}
		ratio := medianOf(ratios)
		off, on := median(results[key{method, false}]), median(results[key{method, true}])
		fmt.Fprintf(w, "  %-10s all off %9.0f calls/s, all on %9.0f calls/s: on = %.2f x off (%s the target of 0.90); allocations per call (the bench process): %.0f off, %.0f on\n",
			method, off.Rate, on.Rate, ratio, targetVerdict(ratio >= 0.9), off.Allocs, on.Allocs)
	}
	return nil
}
