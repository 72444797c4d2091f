package bench

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// The benchmarks run end to end, briefly, and print every figure and ratio
// make bench relies on; the figures themselves are not judged here.
func TestBenchmarksPrintEveryFigure(t *testing.T) {
	o := Options{
		URL:                  brokertest.Require(t),
		Duration:             time.Second, // long enough for a call at c=64 under -race on a loaded machine
		Rounds:               1,
		Concurrencies:        []int{1, 64},
		Procs:                []int{1, 0},
		CompareCoalescing:    true,
		CompareStreamWorkers: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := Fibonacci(ctx, &out, o); err != nil {
		t.Fatalf("Fibonacci: %v\n%s", err, &out)
	}
	if err := Tasks(ctx, &out, o); err != nil {
		t.Fatalf("Tasks: %v\n%s", err, &out)
	}
	if err := QueueTypes(ctx, &out, o); err != nil {
		t.Fatalf("QueueTypes: %v\n%s", err, &out)
	}
	for _, want := range []string{
		"\nGOMAXPROCS=1\n",
		"(the runtime's default)\n",
		"direct c=64: T_ideal", "direct c=1:  p50 gateway - (p50 raw + p50 echo)",
		"queue c=64: T_ideal", "queue c=1:  p50 gateway - (p50 raw + p50 echo)",
		"reply modes: gateway-queue =",
		"write coalescing: gateway-queue =",
		"stream workers: gateway-queue =",
		"core.Client alone (no gRPC), queue: p50 - raw p50 at c=1 =",
		"queue c=1, called in turn: p50 gateway - (p50 raw + p50 echo) =",
		"direct c=1, called in turn: p50 gateway - (p50 raw + p50 echo) =",
		"the gRPC hop in front of it: p50 gateway-queue - (p50 core.Client + p50 echo) at c=1 =",
		"SubmitTask = ",
		"classic: gateway-rpc / raw-rpc, c=64 calls/s", "quorum: gateway-rpc / raw-rpc, c=64 calls/s",
		"classic: SubmitTask / raw-confirmed, c=64 calls/s", "quorum: SubmitTask / raw-confirmed, c=64 calls/s",
		"quorum / classic: gateway-rpc, c=64 calls/s", "quorum / classic: gateway-rpc, c=1 p50",
		"quorum / classic: SubmitTask, c=64 calls/s",
	} {
		if strings.Count(out.String(), want) == 0 {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := strings.Count(out.String(), "the target of 50µs"); n != 8 {
		t.Errorf("got %d c=1 verdicts, want 8 (apart and in turn x 2 reply modes x 2 GOMAXPROCS settings)", n)
	}
	if t.Failed() {
		t.Logf("output:\n%s", &out)
	}
}

// TestProductionPrintsBothAndTheCost runs the production benchmark briefly,
// with every feature and with one, and checks that it prints both rates,
// their ratio, and the cost per call of each side, the broker's CPU
// included (the broker runs on this machine, so it is found).
func TestProductionPrintsBothAndTheCost(t *testing.T) {
	url := brokertest.Require(t)
	for _, tt := range []struct {
		name     string
		features Features
		header   string
	}{
		{"all", Features{}, "Production benchmark: metrics, traces (100% sampled), token auth on, against all off"},
		{"auth", Features{Auth: true}, "Production benchmark: token auth on, against all off"},
		{"grpc spans", Features{GRPCSpans: true, Sampled: 0.5}, "Production benchmark: otelgrpc's server spans alone (50% sampled) on, against all off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{URL: url, Duration: 500 * time.Millisecond, ProductionRounds: 1, ProductionFeatures: tt.features}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var out bytes.Buffer
			if err := Production(ctx, &out, o); err != nil {
				t.Fatalf("Production: %v\n%s", err, &out)
			}
			for _, want := range []string{
				tt.header,
				"round 1  Fibonacci  all off", "round 1  Fibonacci  all on",
				"round 1  SubmitTask all off", "round 1  SubmitTask all on",
				"Fibonacci  all off", "SubmitTask all off",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if n := strings.Count(out.String(), "the target of 0.90"); n != 2 {
				t.Errorf("got %d verdicts, want 2", n)
			}
			costs := regexp.MustCompile(`per call, off and on: \d+ and \d+ allocations, CPU \S+ and \S+ \(bench process\) \+ (\S+) and (\S+) \(broker\)`).FindAllStringSubmatch(out.String(), -1)
			if len(costs) != 2 {
				t.Fatalf("got %d cost lines, want 2", len(costs))
			}
			for _, c := range costs {
				if c[1] == "0s" || c[2] == "0s" {
					t.Errorf("the broker's CPU per call is %s and %s, want it measured (is beam.smp readable in /proc?)", c[1], c[2])
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", &out)
			}
		})
	}
}
