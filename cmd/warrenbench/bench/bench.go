// Package bench measures warren against baselines taken in the same run: a
// raw amqp091-go request/reply client on the same broker and worker, and the
// same gRPC load generator against a gRPC server that answers at once.
//
// Every figure is a median over several rounds; the rounds interleave the
// subjects so that noise on the shared machine hits all of them alike.
package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Result is one measurement: calls completed per second, the median
// latency of a call, and what the whole bench process (load generator,
// gateway and workers alike) allocated per call completed: a figure the
// machine's noise does not move, where rates and latencies swing.
type Result struct {
	Rate   float64
	P50    time.Duration
	Allocs float64 // objects per call
	Bytes  float64 // bytes per call
	// CPU is the bench process's CPU time (user and system, all its
	// goroutines) per call completed; BrokerCPU the broker's, when it
	// runs on this machine and can be found (0 otherwise). On a machine
	// the broker shares, a call's cost is the sum.
	CPU, BrokerCPU time.Duration
	Err            error
}

// callFunc makes one call; it is called concurrently.
type callFunc func(ctx context.Context) error

// load runs c goroutines calling call back to back for d and reports the
// rate of successful calls and their median latency. The first error ends
// the run.
func load(ctx context.Context, c int, d time.Duration, call callFunc) Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Warm up: connections, pools, the broker's queues.
	warm, warmCancel := context.WithCancel(ctx)
	time.AfterFunc(d/5, warmCancel)
	runWorkers(warm, c, call, nil)

	lat := make([][]time.Duration, c)
	var (
		errMu    sync.Mutex
		firstErr error
	)
	onErr := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	// A cancel rather than a deadline ends the run: gRPC would turn a
	// deadline into DeadlineExceeded errors a moment before ctx.Err() says so.
	run, runCancel := context.WithCancel(ctx)
	defer runCancel()
	time.AfterFunc(d, runCancel)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0, broker0 := processCPU(), brokerCPU()
	start := time.Now()
	runWorkers(run, c, call, func(i int, l time.Duration, err error) {
		if err != nil {
			if run.Err() == nil {
				onErr(err)
			}
			return
		}
		lat[i] = append(lat[i], l)
	})
	elapsed := time.Since(start)
	cpu1, broker1 := processCPU(), brokerCPU()
	runtime.ReadMemStats(&after)
	if firstErr != nil {
		return Result{Err: firstErr}
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return Result{Err: fmt.Errorf("no call completed in %v", d)}
	}
	slices.Sort(all)
	n := float64(len(all))
	return Result{
		Rate: n / elapsed.Seconds(), P50: all[len(all)/2],
		Allocs: float64(after.Mallocs-before.Mallocs) / n, Bytes: float64(after.TotalAlloc-before.TotalAlloc) / n,
		CPU: (cpu1 - cpu0) / time.Duration(len(all)), BrokerCPU: (broker1 - broker0) / time.Duration(len(all)),
	}
}

func runWorkers(ctx context.Context, c int, call callFunc, record func(i int, l time.Duration, err error)) {
	var wg sync.WaitGroup
	for i := range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				err := call(ctx)
				if record != nil && ctx.Err() == nil {
					record(i, time.Since(t0), err)
				}
			}
		})
	}
	wg.Wait()
}

// median returns the result with the median rate and, separately, the
// median p50 over rounds.
func median(rs []Result) Result {
	rates := make([]float64, 0, len(rs))
	p50s := make([]time.Duration, 0, len(rs))
	allocs := make([]float64, 0, len(rs))
	bytes := make([]float64, 0, len(rs))
	var cpu, broker []time.Duration
	for _, r := range rs {
		if r.Err != nil {
			return r
		}
		rates = append(rates, r.Rate)
		p50s = append(p50s, r.P50)
		allocs = append(allocs, r.Allocs)
		bytes = append(bytes, r.Bytes)
		cpu = append(cpu, r.CPU)
		broker = append(broker, r.BrokerCPU)
	}
	slices.Sort(rates)
	slices.Sort(p50s)
	return Result{Rate: rates[len(rates)/2], P50: p50s[len(p50s)/2], Allocs: medianOf(allocs), Bytes: medianOf(bytes),
		CPU: medianOf(cpu), BrokerCPU: medianOf(broker)}
}
