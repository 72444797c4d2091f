package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/warrenrpc/warren/core"
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
	// Procs are the GOMAXPROCS settings every Fibonacci subject is measured
	// under, each a section of its own; 0 is the runtime's default, from
	// the CPUs it may use (the GOMAXPROCS variable is ignored).
	// Default: the runtime's default only.
	Procs []int
	// Profile, if set, receives a CPU profile of the process while the
	// gateway answers Fibonacci calls at concurrency 64.
	Profile string
	// CompareCoalescing adds a gateway without write coalescing.
	CompareCoalescing bool
	// CompareStreamWorkers adds a gateway without gRPC stream workers.
	CompareStreamWorkers bool
	// TaskProfile, if set, receives a CPU profile of the process while the
	// gateway answers SubmitTask calls at concurrency 64.
	TaskProfile string
	// ProductionFeatures are what the production benchmark's gateway has
	// on, against one with nothing on. Default (none on): all of them, as
	// AllFeatures, with its Sampled.
	ProductionFeatures Features
	// ProductionRounds of the production benchmark. Default: 9, as its
	// two gateways are measured in turn and the ratio is of each round.
	ProductionRounds int
	// ProductionProfile, if set, is a path prefix: the process's CPU
	// profiles while the production benchmark's gateways answer Fibonacci
	// at concurrency 64, all off and all on, are written to PREFIX.off and
	// PREFIX.on.
	ProductionProfile string
}

func sleep() { time.Sleep(10 * time.Millisecond) }

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if len(o.Concurrencies) == 0 {
		o.Concurrencies = []int{1, 64}
	}
	if len(o.Procs) == 0 {
		o.Procs = []int{0}
	}
	if f := &o.ProductionFeatures; !f.Metrics && !f.Traces && !f.Auth && !f.GRPCSpans {
		f.Metrics, f.Traces, f.Auth = true, true, true
	}
	if o.ProductionRounds <= 0 {
		o.ProductionRounds = 9
	}
	return o
}

// setProcs sets GOMAXPROCS; 0 restores the runtime's default. It returns
// the count in effect.
func setProcs(n int) int {
	if n <= 0 {
		runtime.SetDefaultGOMAXPROCS()
	} else {
		runtime.GOMAXPROCS(n)
	}
	return runtime.GOMAXPROCS(0)
}

// procsNamer names GOMAXPROCS settings; def is the runtime's default.
func procsNamer(def int) func(n int) string {
	return func(n int) string {
		if n <= 0 {
			return fmt.Sprintf("GOMAXPROCS=%d (the runtime's default)", def)
		}
		return fmt.Sprintf("GOMAXPROCS=%d", n)
	}
}

// fibSubject is one thing the Fibonacci load generator calls.
type fibSubject struct {
	name string
	call callFunc
}

// Fibonacci runs the FibonacciService benchmark and prints every figure
// and ratio to w.
func Fibonacci(ctx context.Context, w io.Writer, o Options) error {
	o = o.withDefaults()
	procsName := procsNamer(setProcs(0))
	defer setProcs(0)
	queue := fmt.Sprintf("warren.bench.rpc.%d", os.Getpid())
	stopWorker, err := startWorker(o.URL, queue)
	if err != nil {
		return err
	}
	defer stopWorker()
	defer deleteEntities(o.URL, queue, queue)

	echo, err := startEcho()
	if err != nil {
		return err
	}
	defer echo.close()
	modes := []core.ReplyMode{core.ReplyDirect, core.ReplyQueue}
	gws := map[core.ReplyMode]*grpcTarget{}
	subjects := []fibSubject{{"echo", echo.call}}
	for _, m := range modes {
		g, err := startGateway(o.URL, queue, gatewaySetup{mode: m})
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
		subjects = append(subjects, fibSubject{"raw-" + m.String(), r.call}, fibSubject{"gateway-" + m.String(), g.call})
	}
	// warren's request/reply client alone, without the gRPC hop in front
	// of it: where the gateway's lone-call excess comes from.
	cc, err := startCoreClient(o.URL, queue)
	if err != nil {
		return err
	}
	defer cc.close()
	subjects = append(subjects, fibSubject{"core-client-queue", cc.call})
	// The same gateway with a feature off, for an A/B in the same run.
	for _, ab := range []struct {
		on    bool
		name  string
		setup gatewaySetup
	}{
		{o.CompareCoalescing, "gateway-queue-nocoalesce", gatewaySetup{mode: core.ReplyQueue, noCoalescing: true}},
		{o.CompareStreamWorkers, "gateway-queue-noworkers", gatewaySetup{mode: core.ReplyQueue, noStreamWorkers: true}},
	} {
		if !ab.on {
			continue
		}
		g, err := startGateway(o.URL, queue, ab.setup)
		if err != nil {
			return err
		}
		defer g.close()
		subjects = append(subjects, fibSubject{ab.name, g.call})
	}

	// results[procs][subject][concurrency] holds one Result per round;
	// inTurn[procs][mode] the lone call's excess in each round, measured
	// with the gateway, raw and echo called in turn by one caller.
	results := map[int]map[string]map[int][]Result{}
	inTurn := map[int]map[core.ReplyMode][]float64{}
	callOf := func(name string) callFunc {
		for _, s := range subjects {
			if s.name == name {
				return s.call
			}
		}
		return nil
	}
	fmt.Fprintf(w, "FibonacciService benchmark: n=%d, %v per measurement, %d rounds, medians\n", benchN, o.Duration, o.Rounds)
	for round := range o.Rounds {
		for _, procs := range o.Procs {
			setProcs(procs)
			if results[procs] == nil {
				results[procs] = map[string]map[int][]Result{}
			}
			for _, c := range o.Concurrencies {
				for _, s := range subjects {
					r := load(ctx, c, o.Duration, s.call)
					if r.Err != nil {
						return fmt.Errorf("%s at concurrency %d: %w", s.name, c, r.Err)
					}
					if results[procs][s.name] == nil {
						results[procs][s.name] = map[int][]Result{}
					}
					results[procs][s.name][c] = append(results[procs][s.name][c], r)
					fmt.Fprintf(w, "  round %d  P=%d  %-26s c=%-3d %9.0f calls/s  p50 %8v\n",
						round+1, runtime.GOMAXPROCS(0), s.name, c, r.Rate, r.P50.Round(time.Microsecond))
				}
			}
			if inTurn[procs] == nil {
				inTurn[procs] = map[core.ReplyMode][]float64{}
			}
			for _, m := range modes {
				rs := loadInTurn(ctx, o.Duration, gws[m].call, callOf("raw-"+m.String()), callOf("echo"))
				if err := resultsErr(rs); err != nil {
					return fmt.Errorf("%s gateway, raw and echo in turn: %w", m, err)
				}
				extra := rs[0].P50 - rs[1].P50 - rs[2].P50
				inTurn[procs][m] = append(inTurn[procs][m], float64(extra))
				fmt.Fprintf(w, "  round %d  P=%d  in turn, %s c=1: p50 gateway %v, raw %v, echo %v: excess %v\n", round+1, runtime.GOMAXPROCS(0), m,
					rs[0].P50.Round(time.Microsecond), rs[1].P50.Round(time.Microsecond), rs[2].P50.Round(time.Microsecond), extra.Round(time.Microsecond))
			}
		}
	}
	for _, procs := range o.Procs {
		fmt.Fprintf(w, "\n%s\n", procsName(procs))
		report(w, o, subjects, results[procs])
		for _, m := range modes {
			extra := time.Duration(medianOf(inTurn[procs][m]))
			fmt.Fprintf(w, "  %s c=1, called in turn: p50 gateway - (p50 raw + p50 echo) = %v (%s the target of 50µs)\n",
				m, extra.Round(time.Microsecond), targetVerdict(extra <= 50*time.Microsecond))
		}
	}

	if o.Profile != "" && slices.Contains(o.Concurrencies, 64) {
		setProcs(o.Procs[0])
		r, err := profile(o.Profile, func() Result { return load(ctx, 64, o.Duration*2, gws[core.ReplyQueue].call) })
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\nCPU profile of gateway-queue at c=64, %s (%.0f calls/s) written to %s\n", procsName(o.Procs[0]), r.Rate, o.Profile)
	}
	return nil
}

// report prints the medians and the ratios of one GOMAXPROCS setting.
func report(w io.Writer, o Options, subjects []fibSubject, results map[string]map[int][]Result) {
	has := func(c int) bool { return slices.Contains(o.Concurrencies, c) }
	fmt.Fprintln(w, "medians:")
	for _, c := range o.Concurrencies {
		for _, s := range subjects {
			r := median(results[s.name][c])
			fmt.Fprintf(w, "  %-26s c=%-3d %9.0f calls/s  p50 %8v\n", s.name, c, r.Rate, r.P50.Round(time.Microsecond))
		}
	}
	if !has(1) || !has(64) {
		return
	}
	// Ratios are taken within each round, whose subjects ran back to back
	// under the same machine load, and then the median over rounds: more
	// robust on a shared machine than a ratio of medians.
	perRound := func(f func(i int) float64) float64 {
		xs := make([]float64, o.Rounds)
		for i := range xs {
			xs[i] = f(i)
		}
		return medianOf(xs)
	}
	rate := func(name string, c, i int) float64 { return results[name][c][i].Rate }
	p50 := func(name string, i int) time.Duration { return results[name][1][i].P50 }
	fmt.Fprintln(w, "ratios (gateway vs the two hops it joins; per round, then the median over rounds):")
	for _, m := range []core.ReplyMode{core.ReplyDirect, core.ReplyQueue} {
		gw, raw := "gateway-"+m.String(), "raw-"+m.String()
		ideal := func(i int) float64 { return 1 / (1/rate("echo", 64, i) + 1/rate(raw, 64, i)) }
		ratio := perRound(func(i int) float64 { return rate(gw, 64, i) / ideal(i) })
		verdict := "meets"
		if ratio < 0.8 {
			verdict = "MISSES"
		}
		fmt.Fprintf(w, "  %s c=64: T_ideal %.0f calls/s; gateway = %.2f x T_ideal (%s the target of 0.80), %.2f x T_raw\n",
			m, perRound(ideal), ratio, verdict, perRound(func(i int) float64 { return rate(gw, 64, i) / rate(raw, 64, i) }))
		extra := time.Duration(perRound(func(i int) float64 { return float64(p50(gw, i) - p50(raw, i) - p50("echo", i)) }))
		verdict = "meets"
		if extra > 50*time.Microsecond {
			verdict = "MISSES"
		}
		fmt.Fprintf(w, "  %s c=1:  p50 gateway - (p50 raw + p50 echo) = %v (%s the target of 50µs)\n", m, extra.Round(time.Microsecond), verdict)
	}
	if results["core-client-queue"] != nil {
		fmt.Fprintf(w, "  core.Client alone (no gRPC), queue: p50 - raw p50 at c=1 = %v; %.2f x T_raw at c=64\n",
			time.Duration(perRound(func(i int) float64 { return float64(p50("core-client-queue", i) - p50("raw-queue", i)) })).Round(time.Microsecond),
			perRound(func(i int) float64 { return rate("core-client-queue", 64, i) / rate("raw-queue", 64, i) }))
		fmt.Fprintf(w, "  the gRPC hop in front of it: p50 gateway-queue - (p50 core.Client + p50 echo) at c=1 = %v\n",
			time.Duration(perRound(func(i int) float64 {
				return float64(p50("gateway-queue", i) - p50("core-client-queue", i) - p50("echo", i))
			})).Round(time.Microsecond))
	}
	fmt.Fprintf(w, "  reply modes: gateway-queue = %.2f x gateway-direct calls/s at c=64; p50 queue - direct at c=1 = %v\n",
		perRound(func(i int) float64 { return rate("gateway-queue", 64, i) / rate("gateway-direct", 64, i) }),
		time.Duration(perRound(func(i int) float64 { return float64(p50("gateway-queue", i) - p50("gateway-direct", i)) })).Round(time.Microsecond))
	for _, ab := range []struct{ name, what string }{
		{"gateway-queue-nocoalesce", "write coalescing"},
		{"gateway-queue-noworkers", "stream workers"},
	} {
		if results[ab.name] == nil {
			continue
		}
		fmt.Fprintf(w, "  %s: gateway-queue = %.2f x the same gateway without them at c=64; p50 with - without at c=1 = %v\n", ab.what,
			perRound(func(i int) float64 { return rate("gateway-queue", 64, i) / rate(ab.name, 64, i) }),
			time.Duration(perRound(func(i int) float64 { return float64(p50("gateway-queue", i) - p50(ab.name, i)) })).Round(time.Microsecond))
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
