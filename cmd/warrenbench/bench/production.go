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
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
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

// Features are the production features a prodTarget has on.
type Features struct {
	Metrics, Traces, Auth bool
	// GRPCSpans is otelgrpc's server handler alone on the gateway, with
	// its defaults and nothing else traced (no span on the worker, no
	// header on a request): what the instrumentation the gateway cannot do
	// without costs by itself. Not with Traces.
	GRPCSpans bool
	// Sampled is the share of calls traced, with Traces: a new trace is
	// sampled with this probability (the SDK's TraceIDRatioBased), and a
	// span whose parent was sampled is too. Default (0): every call.
	Sampled float64
}

// AllFeatures is what the production benchmark turns on by default.
var AllFeatures = Features{Metrics: true, Traces: true, Auth: true}

func (f Features) sampler() sdktrace.Sampler {
	if f.Sampled <= 0 || f.Sampled >= 1 {
		return sdktrace.AlwaysSample()
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(f.Sampled))
}

func (f Features) String() string {
	sampled := "100%"
	if f.Sampled > 0 && f.Sampled < 1 {
		sampled = strconv.FormatFloat(f.Sampled*100, 'g', -1, 64) + "%"
	}
	var on []string
	for _, x := range []struct {
		on   bool
		name string
	}{{f.Metrics, "metrics"}, {f.Traces, "traces (" + sampled + " sampled)"}, {f.GRPCSpans, "otelgrpc's server spans alone (" + sampled + " sampled)"}, {f.Auth, "token auth"}} {
		if x.on {
			on = append(on, x.name)
		}
	}
	if len(on) == 0 {
		return "nothing"
	}
	return strings.Join(on, ", ")
}

// startProduction starts a prodTarget on queues named after prefix.
func startProduction(url, prefix string, on Features) (*prodTarget, error) {
	amqpCfg := core.Config{URLs: []string{url}}
	gcfg := gateway.Config{Logger: quiet}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var dialOpts []grpc.DialOption
	if on.Metrics {
		m, err := metrics.New(prometheus.NewRegistry())
		if err != nil {
			return nil, err
		}
		amqpCfg.Metrics, gcfg.Metrics = m, m
	}
	var serverOpts []grpc.ServerOption
	if on.Traces || on.GRPCSpans {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(on.sampler()), sdktrace.WithBatcher(discardSpans{}))
		closers = append(closers, func() { _ = tp.Shutdown(context.Background()) })
		if on.Traces {
			amqpCfg.Tracing = core.Tracing{Provider: tp}
		} else {
			serverOpts = append(serverOpts, grpc.StatsHandler(otelgrpc.NewServerHandler(
				otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))))
		}
	}
	if on.Auth {
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
	}, serverOpts...)
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
// gateway with o.ProductionFeatures on (by default metrics, traces with
// every call sampled and spans batched to an exporter that drops them, and
// token authentication), and through one with them off, in turn in every
// round, and prints both and their ratio (the target: at least 0.90).
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
		prefix, features := off, Features{}
		if setting {
			prefix, features = on, o.ProductionFeatures
		}
		t, err := startProduction(o.URL, prefix, features)
		if err != nil {
			return err
		}
		defer t.close()
		targets[setting] = t
	}

	fmt.Fprintf(w, "\nProduction benchmark: %s on, against all off, concurrency 64, %v per measurement, %d rounds (on and off in turn, in alternating order), medians\n",
		o.ProductionFeatures, o.Duration, o.ProductionRounds)
	fmt.Fprintf(w, "  (CPU: the bench process's, the load generator's included, and the broker's, per call; on this machine they share the cores)\n")
	name := map[bool]string{false: "off", true: "on"}
	type key struct {
		method string
		on     bool
	}
	results := map[key][]Result{}
	for round := range o.ProductionRounds {
		for _, method := range []string{"Fibonacci", "SubmitTask"} {
			// Alternate which goes first, so that a drift of the machine
			// within a round favours neither.
			order := []bool{false, true}
			if round%2 == 1 {
				order = []bool{true, false}
			}
			for _, setting := range order {
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
				fmt.Fprintf(w, "  round %d  %-10s all %-3s %9.0f calls/s  p50 %8v  %5.1f allocs, %6.0f B, CPU %v + broker %v per call\n",
					round+1, method, name[setting], r.Rate, r.P50.Round(time.Microsecond), r.Allocs, r.Bytes,
					r.CPU.Round(time.Microsecond), r.BrokerCPU.Round(time.Microsecond))
			}
		}
	}
	if o.ProductionProfile != "" {
		for _, setting := range []bool{false, true} {
			path := o.ProductionProfile + "." + name[setting]
			r, err := profile(path, func() Result { return load(ctx, 64, o.Duration*2, targets[setting].callFib) })
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "  CPU profile of Fibonacci, all %s (%.0f calls/s), written to %s\n", name[setting], r.Rate, path)
		}
	}
	for _, method := range []string{"Fibonacci", "SubmitTask"} {
		var ratios []float64
		for i := range o.ProductionRounds {
			ratios = append(ratios, results[key{method, true}][i].Rate/results[key{method, false}][i].Rate)
		}
		ratio := medianOf(ratios)
		off, on := median(results[key{method, false}]), median(results[key{method, true}])
		fmt.Fprintf(w, "  %-10s all off %9.0f calls/s, all on %9.0f calls/s: on = %.2f x off, the median of the rounds' ratios (%s the target of 0.90)\n",
			method, off.Rate, on.Rate, ratio, targetVerdict(ratio >= 0.9))
		fmt.Fprintf(w, "  %-10s per call, off and on: %.0f and %.0f allocations, CPU %v and %v (bench process) + %v and %v (broker)\n",
			"", off.Allocs, on.Allocs, off.CPU.Round(time.Microsecond), on.CPU.Round(time.Microsecond),
			off.BrokerCPU.Round(time.Microsecond), on.BrokerCPU.Round(time.Microsecond))
	}
	return nil
}
