// Command warrenbench measures warren against raw amqp091-go and gRPC
// baselines in the same run (make bench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/warrenrpc/warren/cmd/warrenbench/bench"
	"github.com/warrenrpc/warren/core"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var o bench.Options
	flag.StringVar(&o.URL, "amqp-url", envOr("WARREN_AMQP_URL", core.DefaultURL), "broker URL")
	flag.DurationVar(&o.Duration, "duration", 2*time.Second, "length of one measurement")
	flag.IntVar(&o.Rounds, "rounds", 5, "rounds; figures are medians")
	cs := flag.String("c", "1,64", "comma-separated concurrencies (Fibonacci)")
	procs := flag.String("procs", "0", "comma-separated GOMAXPROCS settings to measure Fibonacci under; 0 is the runtime's default from the CPUs, whatever the GOMAXPROCS variable says")
	flag.BoolVar(&o.CompareCoalescing, "compare-coalescing", false, "also measure a Fibonacci gateway without write coalescing")
	flag.BoolVar(&o.CompareStreamWorkers, "compare-stream-workers", false, "also measure a Fibonacci gateway without gRPC stream workers")
	flag.String("only", "", "run only this benchmark: fib, tasks, queue-types, routes (the generic path: a routed proto service on the SDK worker), or production (metrics, traces and token auth on against off)")
	flag.StringVar(&o.Profile, "cpuprofile", "", "write a CPU profile of the gateway answering Fibonacci at c=64 here")
	flag.StringVar(&o.TaskProfile, "taskprofile", "", "write a CPU profile of the gateway answering SubmitTask at c=64 here")
	features := flag.String("production-on", "metrics,traces,auth", "comma-separated features the production benchmark turns on against all off: metrics, traces, auth, or grpc-spans (otelgrpc's server handler alone, nothing else traced)")
	sampled := flag.Float64("production-sampled", 1, "share of the production benchmark's calls traced, with traces on (1: every call)")
	flag.IntVar(&o.ProductionRounds, "production-rounds", 9, "rounds of the production benchmark")
	flag.StringVar(&o.ProductionProfile, "prodprofile", "", "write CPU profiles of the production benchmark's gateways answering Fibonacci at c=64, all off and all on, to this prefix .off and .on")
	flag.Parse()
	o.ProductionFeatures = productionFeatures(*features)
	if !(*sampled > 0 && *sampled <= 1) {
		fmt.Fprintf(os.Stderr, "warrenbench: -production-sampled %v: want a share above 0 and at most 1\n", *sampled)
		os.Exit(2)
	}
	o.ProductionFeatures.Sampled = *sampled
	o.Concurrencies = ints("c", *cs, 1)
	o.Procs = ints("procs", *procs, 0)
	only := flag.Lookup("only").Value.String()
	if only == "" || only == "fib" {
		if err := bench.Fibonacci(ctx, os.Stdout, o); err != nil {
			fmt.Fprintln(os.Stderr, "warrenbench:", err)
			os.Exit(1)
		}
	}
	if only == "" || only == "tasks" {
		if err := bench.Tasks(ctx, os.Stdout, o); err != nil {
			fmt.Fprintln(os.Stderr, "warrenbench:", err)
			os.Exit(1)
		}
	}
	if only == "" || only == "queue-types" {
		if err := bench.QueueTypes(ctx, os.Stdout, o); err != nil {
			fmt.Fprintln(os.Stderr, "warrenbench:", err)
			os.Exit(1)
		}
	}
	if only == "" || only == "routes" {
		if err := bench.Routes(ctx, os.Stdout, o); err != nil {
			fmt.Fprintln(os.Stderr, "warrenbench:", err)
			os.Exit(1)
		}
	}
	if only == "" || only == "production" {
		if err := bench.Production(ctx, os.Stdout, o); err != nil {
			fmt.Fprintln(os.Stderr, "warrenbench:", err)
			os.Exit(1)
		}
	}
}

// ints parses a comma-separated list of integers of at least least, or exits.
func ints(name, list string, least int) []int {
	var xs []int
	for _, f := range strings.Split(list, ",") {
		x, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || x < least {
			fmt.Fprintf(os.Stderr, "warrenbench: -%s: bad value %q\n", name, f)
			os.Exit(2)
		}
		xs = append(xs, x)
	}
	return xs
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// productionFeatures parses -production-on, or exits.
func productionFeatures(list string) bench.Features {
	var f bench.Features
	for _, name := range strings.Split(list, ",") {
		switch strings.TrimSpace(name) {
		case "metrics":
			f.Metrics = true
		case "traces":
			f.Traces = true
		case "auth":
			f.Auth = true
		case "grpc-spans":
			f.GRPCSpans = true
		default:
			fmt.Fprintf(os.Stderr, "warrenbench: -production-on: %q is not one of metrics, traces, auth, grpc-spans\n", name)
			os.Exit(2)
		}
	}
	if f.Traces && f.GRPCSpans {
		fmt.Fprintln(os.Stderr, "warrenbench: -production-on: grpc-spans is otelgrpc's handler without the rest of traces; not both")
		os.Exit(2)
	}
	return f
}
