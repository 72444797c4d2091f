package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/gateway"
)

// Options configure a run.
type Options struct {
	// URL is the broker.
	URL string
	// Duration of one measurement. Default: 2s.
	Duration time.Duration
	// Rounds of every measurement; figures are medians. Default: 3.
	Rounds int
	// Concurrencies to measure. Default: 1 and 64.
	Concurrencies []int
	// Profile, if set, receives a CPU profile of the process while the
	// gateway answers Fibonacci calls at concurrency 64.
	Profile string
	// CompareCoalescing adds a gateway without write coalescing.
	CompareCoalescing bool
	// TaskProfile, if set, receives a CPU profile of the process while the
	// gateway answers SubmitTask calls at concurrency 64.
	TaskProfile string
}

func sleep() { time.Sleep(10 * time.Millisecond) }

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	return o
}

// Fibonacci runs the FibonacciService benchmark and prints every figure
// and ratio to w.
func Fibonacci(ctx context.Context, w io.Writer, o Options) error {
	o = o.withDefaults()
	queue := fmt.Sprintf("warren.bench.rpc.%d", os.Getpid())
	stopWorker, err := startWorker(o.URL, queue)
	if err != nil {
		return err
	}
	defer stopWorker()
	defer deleteQueue(o.URL, queue)

	echo, err := startEcho()
	if err != nil {
		return err
	}
	defer echo.close()
	modes := []gateway.ReplyMode{gateway.ReplyDirect, gateway.ReplyQueue}
	gws := map[gateway.ReplyMode]*grpcTarget{}
	raws := map[gateway.ReplyMode]*rawClient{}
	for _, m := range modes {
		g, err := startGateway(o.URL, queue, m, true)
		if err != nil {
			return err
		}
		defer g.close()
		gws[m] = g
		r, err := newRawClient(o.URL, queue, m)
		if err != nil {
			return err
		}
		defer r.close()
		raws[m] = r
	}

	type subject struct {
		name string
		call callFunc
	}
	subjects := []subject{{"echo", echo.call}}
	if o.CompareCoalescing {
		// The same gateway with every flush its own syscall, for an A/B of
		// write coalescing in the same run.
		g, err := startGateway(o.URL, queue, gateway.ReplyDirect, false)
		if err != nil {
			return err
		}
		defer g.close()
		subjects = append(subjects, subject{"gateway-direct-nocoalesce", g.call})
	}
	for _, m := range modes {
		subjects = append(subjects,
			subject{"raw-" + m.String(), raws[m].call},
			subject{"gateway-" + m.String(), gws[m].call})
	}
	concurrencies := o.Concurrencies
	if len(concurrencies) == 0 {
		concurrencies = []int{1, 64}
	}
	has := func(c int) bool { return slices.Contains(concurrencies, c) }
	results := map[string]map[int][]Result{}
	fmt.Fprintf(w, "FibonacciService benchmark: n=%d, %v per measurement, %d rounds, medians\n", benchN, o.Duration, o.Rounds)
	for round := range o.Rounds {
		for _, c := range concurrencies {
			for _, s := range subjects {
				r := load(ctx, c, o.Duration, s.call)
				if r.Err != nil {
					return fmt.Errorf("%s at concurrency %d: %w", s.name, c, r.Err)
				}
				if results[s.name] == nil {
					results[s.name] = map[int][]Result{}
				}
				results[s.name][c] = append(results[s.name][c], r)
				fmt.Fprintf(w, "  round %d  %-26s c=%-3d %9.0f calls/s  p50 %8v\n", round+1, s.name, c, r.Rate, r.P50.Round(time.Microsecond))
			}
		}
	}
	med := func(name string, c int) Result { return median(results[name][c]) }

	fmt.Fprintln(w, "\nmedians:")
	for _, c := range concurrencies {
		for _, s := range subjects {
			r := med(s.name, c)
			fmt.Fprintf(w, "  %-26s c=%-3d %9.0f calls/s  p50 %8v\n", s.name, c, r.Rate, r.P50.Round(time.Microsecond))
		}
	}
	// Ratios are taken within each round, whose subjects ran back to back
	// under the same machine load, and then the median over rounds: more
	// robust on a shared machine than a ratio of medians.
	fmt.Fprintln(w, "\nratios (gateway vs the two hops it joins; per round, then the median over rounds):")
	for _, m := range modes {
		if !has(1) || !has(64) {
			break
		}
		gw, raw, echo := "gateway-"+m.String(), "raw-"+m.String(), "echo"
		var ideals, toIdeal, toRaw []float64
		var over []time.Duration
		for i := range o.Rounds {
			g, r, e := results[gw][64][i].Rate, results[raw][64][i].Rate, results[echo][64][i].Rate
			ideal := 1 / (1/e + 1/r)
			ideals = append(ideals, ideal)
			toIdeal = append(toIdeal, g/ideal)
			toRaw = append(toRaw, g/r)
			over = append(over, results[gw][1][i].P50-results[raw][1][i].P50-results[echo][1][i].P50)
		}
		ratio := medianOf(toIdeal)
		verdict := "meets"
		if ratio < 0.8 {
			verdict = "MISSES"
		}
		fmt.Fprintf(w, "  %s c=64: T_ideal %.0f calls/s; gateway = %.2f x T_ideal (%s the target of 0.80), %.2f x T_raw\n",
			m, medianOf(ideals), ratio, verdict, medianOf(toRaw))
		extra := medianOf(over)
		verdict = "meets"
		if extra > 100*time.Microsecond {
			verdict = "MISSES"
		}
		fmt.Fprintf(w, "  %s c=1:  p50 gateway - (p50 raw + p50 echo) = %v (%s the target of 100µs)\n", m, extra.Round(time.Microsecond), verdict)
	}
	if has(1) && has(64) {
		var rate []float64
		var lat []time.Duration
		for i := range o.Rounds {
			rate = append(rate, results["gateway-queue"][64][i].Rate/results["gateway-direct"][64][i].Rate)
			lat = append(lat, results["gateway-queue"][1][i].P50-results["gateway-direct"][1][i].P50)
		}
		fmt.Fprintf(w, "  reply modes: gateway-queue = %.2f x gateway-direct calls/s at c=64; p50 queue - direct at c=1 = %v\n",
			medianOf(rate), medianOf(lat).Round(time.Microsecond))
	}
	if o.CompareCoalescing && has(64) {
		var gain []float64
		for i := range o.Rounds {
			gain = append(gain, results["gateway-direct"][64][i].Rate/results["gateway-direct-nocoalesce"][64][i].Rate)
		}
		fmt.Fprintf(w, "  write coalescing: gateway-direct c=64 = %.2f x the same gateway without it\n", medianOf(gain))
	}

	if o.Profile != "" && has(64) {
		best := gateway.ReplyDirect
		if med("gateway-queue", 64).Rate > med("gateway-direct", 64).Rate {
			best = gateway.ReplyQueue
		}
		r, err := profile(o.Profile, func() Result { return load(ctx, 64, o.Duration*2, gws[best].call) })
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\nCPU profile of gateway-%s at c=64 (%.0f calls/s) written to %s\n", best, r.Rate, o.Profile)
	}
	return nil
}

func deleteQueue(url, queue string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(queue, false, false, false)
	}
}

// profile writes a CPU profile of the process to path while run runs.
func profile(path string, run func() Result) (Result, error) {
	f, err := os.Create(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return Result{}, err
	}
	r := run()
	pprof.StopCPUProfile()
	return r, r.Err
}

// medianOf returns the median of xs.
func medianOf[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
