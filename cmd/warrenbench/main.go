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

	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var o bench.Options
	flag.StringVar(&o.URL, "amqp-url", envOr("WARREN_AMQP_URL", amqpx.DefaultURL), "broker URL")
	flag.DurationVar(&o.Duration, "duration", 2*time.Second, "length of one measurement")
	flag.IntVar(&o.Rounds, "rounds", 5, "rounds; figures are medians")
	cs := flag.String("c", "1,64", "comma-separated concurrencies (Fibonacci)")
	flag.BoolVar(&o.CompareCoalescing, "compare-coalescing", false, "also measure a Fibonacci gateway without write coalescing")
	flag.String("only", "", "run only this benchmark: fib or tasks")
	flag.StringVar(&o.Profile, "cpuprofile", "", "write a CPU profile of the gateway answering Fibonacci at c=64 here")
	flag.StringVar(&o.TaskProfile, "taskprofile", "", "write a CPU profile of the gateway answering SubmitTask at c=64 here")
	flag.Parse()
	for _, f := range strings.Split(*cs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			fmt.Fprintf(os.Stderr, "warrenbench: -c: bad concurrency %q\n", f)
			os.Exit(2)
		}
		o.Concurrencies = append(o.Concurrencies, c)
	}
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
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
