package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/worker"
)

// callLoad keeps a few Fibonacci callers busy and records, for every call,
// when it ended and how.
type callLoad struct {
	mu    sync.Mutex
	calls []callRecord
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

type callRecord struct {
	end  time.Time
	code codes.Code
}

func startCallLoad(client warrenv1.FibonacciServiceClient, callers int) *callLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &callLoad{stop: cancel}
	for range callers {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := client.Fibonacci(cctx, &warrenv1.FibonacciRequest{N: 30})
				ccancel()
				if ctx.Err() != nil {
					return
				}
				l.mu.Lock()
				l.calls = append(l.calls, callRecord{end: time.Now(), code: status.Code(err)})
				l.mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond) // fail-fast calls would spin
				}
			}
		})
	}
	return l
}

func (l *callLoad) finish() []callRecord {
	l.stop()
	l.wg.Wait()
	return l.calls
}

// faultRow is one line of the fault table.
type faultRow struct {
	fault           string
	detect, recover time.Duration // -1: never
	ok, failed      int
	codes           map[codes.Code]int
}

// measure reads a call log around a fault injected at start and repaired at
// repaired: detection is the first failed call after start, recovery the
// first successful call after repaired (after the last failure).
func measure(name string, calls []callRecord, start, repaired time.Time) faultRow {
	r := faultRow{fault: name, detect: -1, recover: -1, codes: map[codes.Code]int{}}
	var lastFail time.Time
	for _, c := range calls {
		if c.end.Before(start) {
			continue
		}
		if c.code == codes.OK {
			r.ok++
			continue
		}
		r.failed++
		r.codes[c.code]++
		if r.detect < 0 {
			r.detect = c.end.Sub(start)
		}
		lastFail = c.end
	}
	for _, c := range calls {
		if c.code == codes.OK && c.end.After(repaired) && c.end.After(lastFail) {
			r.recover = c.end.Sub(repaired)
			break
		}
	}
	return r
}

func (r faultRow) String() string {
	var cs []string
	for c, n := range r.codes {
		cs = append(cs, fmt.Sprintf("%v×%d", c, n))
	}
	return fmt.Sprintf("| %-26s | %9v | %9v | %6d | %6d | %s |", r.fault,
		r.detect.Round(time.Millisecond), r.recover.Round(time.Millisecond), r.ok, r.failed, strings.Join(cs, " "))
}

// TestFaultTable breaks the gateway's broker path in each way issue 5
// lists and measures, with calls running throughout, how long the gateway
// takes to notice (the first failed call) and to serve again after the
// repair (the first successful call), and how the calls failed. Every
// failure must be UNAVAILABLE or RESOURCE_EXHAUSTED, never a hang.
func TestFaultTable(t *testing.T) {
	t.Parallel()
	type scenario struct {
		name   string
		break_ func()
		repair func()
		// inFlightWait: a call in flight when the fault began may end at
		// its deadline. Under a resource alarm the broker holds the
		// worker's reply and tells the gateway nothing until the gateway
		// itself publishes; calls that start after that fail at once.
		inFlightWait bool
	}
	const callers = 4
	var rows []faultRow
	run := func(url string, queue string, s scenario) {
		t.Helper()
		gw := startRPCGatewayAt(t, url, gwConfig{RPCQueue: queue, AMQP: core.Config{Heartbeat: time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}})
		load := startCallLoad(gw.fib, callers)
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		s.break_()
		// Hold the fault for a second, and until a call failed: the
		// broker evaluates a memory alarm on its monitor's tick (every
		// 2.5 s), which may come after a second has passed.
		held := time.Now().Add(time.Second)
		failedSince := func(t0 time.Time) bool {
			load.mu.Lock()
			defer load.mu.Unlock()
			for _, c := range load.calls {
				if c.code != codes.OK && c.end.After(t0) {
					return true
				}
			}
			return false
		}
		for giveUp := time.Now().Add(10 * time.Second); time.Now().Before(giveUp) && (time.Now().Before(held) || !failedSince(start)); {
			time.Sleep(10 * time.Millisecond)
		}
		s.repair()
		repaired := time.Now() // a node's rabbitmqctl returns once it is done
		deadline := time.Now().Add(15 * time.Second)
		for {
			load.mu.Lock()
			n := len(load.calls)
			ok := n > 0 && load.calls[n-1].code == codes.OK && load.calls[n-1].end.After(repaired)
			load.mu.Unlock()
			if ok || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		row := measure(s.name, load.finish(), start, repaired)
		rows = append(rows, row)
		for c, n := range row.codes {
			switch {
			case c == codes.Unavailable || c == codes.ResourceExhausted:
			case c == codes.DeadlineExceeded && s.inFlightWait && n <= callers:
				// At most the one call per caller in flight when it began.
			default:
				t.Errorf("%s: %d calls failed with %v; want UNAVAILABLE or RESOURCE_EXHAUSTED", s.name, n, c)
			}
		}
		if row.detect < 0 {
			t.Errorf("%s: no call failed", s.name)
		}
		if row.recover < 0 || row.recover > 10*time.Second {
			t.Errorf("%s: serving again %v after the repair, want within 10s (it takes well under a second on an idle machine)", s.name, row.recover)
		}
	}

	// Faults a proxy between the gateway and the broker can make.
	queue := brokertest.Name(t, "rpc")
	startFibWorker(t, queue)
	proxy, url := brokertest.Proxy(t)
	for _, s := range []scenario{
		{"connection drop (FIN)", func() { proxy.Refuse(true); proxy.Drop() }, func() { proxy.Refuse(false) }, false},
		{"TCP reset (RST)", func() { proxy.Refuse(true); proxy.Reset() }, func() { proxy.Refuse(false) }, false},
		{"black hole (heartbeat 1s)", func() { proxy.Blackhole(true) }, func() { proxy.Blackhole(false); proxy.Drop() }, false},
	} {
		run(url, queue, s)
	}

	// Faults of a broker node of the test's own.
	node := brokertest.StartNode(t)
	nodeQueue := "rpc_queue"
	warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{URLs: []string{node.URL}, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}},
		fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: nodeQueue, Logger: quietLog}))
	for _, s := range []scenario{
		{"broker restart", func() { node.Ctl(t, "stop_app") }, func() { node.Ctl(t, "start_app") }, false},
		{"memory alarm", func() { node.Ctl(t, "set_vm_memory_high_watermark", "0") }, func() { node.Ctl(t, "set_vm_memory_high_watermark", "0.4") }, true},
	} {
		run(node.URL, nodeQueue, s)
	}

	t.Logf("fault table (Fibonacci calls from 4 callers throughout; detect = first failed call after the fault began "+
		"(for a node: after rabbitmqctl started, which itself takes about a second), recover = first success after the repair was complete):\n"+
		"| %-26s | %9s | %9s | %6s | %6s | %s |", "fault", "detect", "recover", "ok", "failed", "how they failed")
	for _, r := range rows {
		t.Log(r)
	}
}
