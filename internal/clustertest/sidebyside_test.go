package clustertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/metrics"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// sideGateway is an in-process gateway on a TCP port with metrics of its
// own, so that the test counts the calls each gateway served.
type sideGateway struct {
	name string
	*warrentest.Gateway
	reg *prometheus.Registry
}

// counter sums the series of the counter family name whose labels include
// match.
func (g *sideGateway) counter(t testing.TB, family string, match map[string]string) float64 {
	t.Helper()
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// fibServed is how many Fibonacci calls the gateway has answered OK.
func (g *sideGateway) fibServed(t testing.TB) int {
	return int(g.counter(t, "grpc_server_handled_total", map[string]string{"grpc_method": "Fibonacci", "grpc_code": "OK"}))
}

// repliesDropped is how many replies reached the gateway's reply queue
// for no call of its own.
func (g *sideGateway) repliesDropped(t testing.TB) int {
	return int(g.counter(t, "warren_amqp_replies_dropped_total", nil))
}

type sideNames struct{ rpc, tasks, events string }

func startSideGateway(t testing.TB, name string, names sideNames, maxAge time.Duration) *sideGateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	g := warrentest.StartGatewayTCP(t, gateway.Config{
		AMQP:                  core.Config{Name: "warren-side-" + name},
		Metrics:               m,
		MaxConnectionAge:      maxAge,
		MaxConnectionAgeGrace: time.Second,
	},
		fibsvc.New(fibsvc.Config{Queue: names.rpc}),
		tasksvc.New(tasksvc.Config{Queue: names.tasks, EventsExchange: names.events, Logger: warrentest.QuietLog}),
	)
	return &sideGateway{name: name, Gateway: g, reg: reg}
}

// startSideWorkers runs two worker groups (Fibonacci and tasks) on the
// shared broker; done, if not nil, records the tasks processed.
func startSideWorkers(t testing.TB, names sideNames, done *processed) {
	t.Helper()
	for k := range 2 {
		ws := []worker.Worker{tasksvc.NewWorker(tasksvc.WorkerConfig{
			Queue: names.tasks, EventsExchange: names.events, Logger: warrentest.QuietLog,
			Handler: func(ctx context.Context, body []byte) error {
				if done != nil {
					return done.handler(ctx, body)
				}
				return nil
			},
		})}
		if names.rpc != "" {
			ws = append(ws, fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: names.rpc, Logger: warrentest.QuietLog}))
		}
		warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{Name: fmt.Sprintf("warren-side-worker-%d", k+1)}}, ws...)
	}
}

func newSideNames(t testing.TB) sideNames {
	return sideNames{rpc: brokertest.Name(t, "rpc"), tasks: brokertest.Name(t, "tasks"), events: brokertest.Name(t, "events")}
}

// TestGatewaysSideBySideRoundRobin runs two gateways and two workers on
// one broker, and a client with round_robin over both gateways'
// addresses: its calls spread over both, every one succeeds, and neither
// gateway receives a reply meant for the other (each has its own reply
// queue; a reply for no call of its own would count in
// warren_amqp_replies_dropped_total).
func TestGatewaysSideBySideRoundRobin(t *testing.T) {
	t.Parallel()
	brokertest.Require(t)
	names := newSideNames(t)
	startSideWorkers(t, names, nil)
	a := startSideGateway(t, "A", names, 0)
	b := startSideGateway(t, "B", names, 0)

	r := manual.NewBuilderWithScheme("warren-side")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: a.Addr}, {Addr: b.Addr}}})
	conn, err := grpc.NewClient(r.Scheme()+":///gateways", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fib := warrenv1.NewFibonacciServiceClient(conn)
	const calls = 400
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < calls; i += 8 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: uint32(i % 40)})
				cancel()
				if err == nil && resp.GetValue() != fibOf(i%40) {
					err = fmt.Errorf("fib(%d) = %s, want %s: a reply meant for another call", i%40, resp.GetValue(), fibOf(i%40))
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call: %v", err)
	}
	na, nb := a.fibServed(t), b.fibServed(t)
	t.Logf("round_robin over two gateways: %d calls, gateway A served %d, B %d; replies dropped: A %d, B %d",
		calls, na, nb, a.repliesDropped(t), b.repliesDropped(t))
	if na+nb != calls {
		t.Errorf("the gateways served %d + %d calls, want %d in all", na, nb, calls)
	}
	for _, g := range []struct {
		name string
		n    int
	}{{"A", na}, {"B", nb}} {
		if g.n < calls/4 {
			t.Errorf("gateway %s served %d of %d calls; want round_robin to spread them (at least a quarter each)", g.name, g.n, calls)
		}
	}
	if d := a.repliesDropped(t) + b.repliesDropped(t); d != 0 {
		t.Errorf("%d replies reached a gateway that had no call for them; want 0", d)
	}
}

func fibOf(n int) string {
	a, b := uint64(0), uint64(1)
	for range n {
		a, b = b, a+b
	}
	return strconv.FormatUint(a, 10)
}

// balancer is an L4 load balancer: it forwards each new TCP connection to
// the next of its backends, round robin, and knows nothing of gRPC.
type balancer struct {
	lis net.Listener
	wg  sync.WaitGroup

	mu       sync.Mutex
	backends []string
	next     int
	conns    map[net.Conn]struct{}
}

func startBalancer(t testing.TB, backends ...string) *balancer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{lis: lis, backends: backends, conns: map[net.Conn]struct{}{}}
	b.wg.Go(b.accept)
	t.Cleanup(func() {
		_ = lis.Close()
		b.mu.Lock()
		for c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *balancer) add(backend string) {
	b.mu.Lock()
	b.backends = append(b.backends, backend)
	b.mu.Unlock()
}

func (b *balancer) accept() {
	for {
		c, err := b.lis.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		backend := b.backends[b.next%len(b.backends)]
		b.next++
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Go(func() {
			defer func() {
				b.mu.Lock()
				delete(b.conns, c)
				b.mu.Unlock()
				_ = c.Close()
			}()
			up, err := net.Dial("tcp", backend)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done // one direction ended: end both
			_ = up.Close()
			_ = c.Close()
			<-done
		})
	}
}

// TestMaxConnectionAgeRebalances puts gateways A and B behind an L4 load
// balancer with clients that each hold one connection through it
// (pick_first, as a client behind a load balancer's one address does),
// then adds gateway C to the balancer. With a max connection age of 3 s,
// the gateways close old connections, the clients dial again and some
// land on C; with none (the control), C serves nothing.
func TestMaxConnectionAgeRebalances(t *testing.T) {
	t.Parallel()
	brokertest.Require(t)
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
	}{
		{"max connection age 3s", 3 * time.Second},
		{"no max connection age", 0},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			names := newSideNames(t)
			startSideWorkers(t, names, nil)
			gws := []*sideGateway{startSideGateway(t, "A", names, tc.maxAge), startSideGateway(t, "B", names, tc.maxAge)}
			lb := startBalancer(t, gws[0].Addr, gws[1].Addr)

			const clients = 6
			ld := newLoad()
			var log calls
			for range clients {
				conn, err := grpc.NewClient(lb.lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				client := warrenv1.NewFibonacciServiceClient(conn)
				// A first call connects the client and finds the
				// gateways' workers present.
				warrentest.Eventually(t, 15*time.Second, "a first call", func() bool {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_, err := client.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 10})
					return err == nil
				})
				ld.fib(client, 1, &log)
			}
			defer ld.stop()
			served := func() []int {
				var n []int
				for _, g := range gws {
					n = append(n, g.fibServed(t))
				}
				return n
			}
			window := func(d time.Duration) []int {
				before := served()
				time.Sleep(d)
				after := served()
				for i := range after {
					if i < len(before) {
						after[i] -= before[i]
					}
				}
				return after
			}
			settle := 3 * time.Second
			if tc.maxAge > 0 {
				settle = 3 * tc.maxAge
			}
			first := window(5 * time.Second)
			gws = append(gws, startSideGateway(t, "C", names, tc.maxAge))
			lb.add(gws[2].Addr)
			joined := time.Now()
			during := window(settle)
			last := window(5 * time.Second)
			ld.stop()
			var failed map[codes.Code]int
			for _, c := range log.snapshot() {
				if c.code != codes.OK {
					t.Logf("call failed %v after C joined: %v", c.end.Sub(joined).Round(time.Millisecond), c.err)
					if failed == nil {
						failed = map[codes.Code]int{}
					}
					failed[c.code]++
				}
			}
			share := func(n []int) string {
				total := 0
				for _, v := range n {
					total += v
				}
				var parts []string
				for i, v := range n {
					parts = append(parts, fmt.Sprintf("%s %d (%d%%)", gws[i].name, v, 100*v/max(total, 1)))
				}
				return strings.Join(parts, ", ")
			}
			msg := fmt.Sprintf("%s, %d clients through an L4 balancer: calls per gateway: before C joined (5s): %s; the %v after C joined: %s; the 5s after that: %s; failed calls: %s",
				tc.name, clients, share(first), settle, share(during), share(last), codeCounts(failed))
			t.Log(msg)
			fmt.Println(msg)
			cShare := float64(last[2]) / float64(max(last[0]+last[1]+last[2], 1))
			if tc.maxAge > 0 && cShare < 0.15 {
				t.Errorf("with a max connection age of %v, gateway C served %.0f%% of the calls %v after it joined; want clients to rebalance onto it", tc.maxAge, 100*cShare, settle)
			}
			if tc.maxAge == 0 && last[2] != 0 {
				t.Errorf("with no max connection age, gateway C served %d calls; want none (clients keep their connections)", last[2])
			}
			// A connection closed for its age lets its calls finish.
			for c, n := range failed {
				t.Errorf("%d calls failed with %v; want none to fail as connections age out", n, c)
			}
		})
	}
}

// TestGatewayKillLosesNoConfirmedTask runs one gateway in a process of its
// own next to an in-process one, both on the shared broker, with task
// submitters whose client does round_robin over both and Fibonacci calls
// held by a worker that never answers, and kills the first gateway with
// SIGKILL: the calls in flight on it fail at once with UNAVAILABLE (never
// at their 30 s deadline), every task confirmed to a submitter is
// processed, and the submitters go on through the other gateway.
func TestGatewayKillLosesNoConfirmedTask(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	names := newSideNames(t)
	held := brokertest.Name(t, "held")
	got := make(chan struct{}, 64)
	warrentest.FakeWorker(t, held, func(*amqp.Channel, amqp.Delivery) { got <- struct{}{} }) // holds every request
	done := &processed{count: map[string]int{}}
	startSideWorkers(t, sideNames{tasks: names.tasks, events: names.events}, done)
	victim := startGatewayProcess(t, url, held, names.tasks, names.events)
	other := startSideGateway(t, "B", sideNames{rpc: held, tasks: names.tasks, events: names.events}, 0)

	r := manual.NewBuilderWithScheme("warren-kill")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: victim.addr}, {Addr: other.Addr}}})
	rr, err := grpc.NewClient(r.Scheme()+":///gateways", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	direct, err := grpc.NewClient(victim.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	var tasks calls
	ld := newLoad()
	ld.tasks(warrenv1.NewTaskServiceClient(rr), 4, "side", &tasks)
	defer ld.stop()

	// Calls in flight on the victim: its worker holds them.
	const inFlight = 4
	type result struct {
		err error
		at  time.Time
	}
	results := make(chan result, inFlight)
	fib := warrenv1.NewFibonacciServiceClient(direct)
	for range inFlight {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 10})
			results <- result{err, time.Now()}
		}()
	}
	for range inFlight {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("the held worker did not get the calls within 10s")
		}
	}
	time.Sleep(time.Second) // tasks through both gateways
	killed := time.Now()
	victim.kill()
	var slowest time.Duration
	for range inFlight {
		res := <-results
		if status.Code(res.err) != codes.Unavailable {
			t.Errorf("a call in flight on the killed gateway ended with %v; want UNAVAILABLE", res.err)
		}
		slowest = max(slowest, res.at.Sub(killed))
	}
	if slowest > time.Second {
		t.Errorf("the calls in flight on the killed gateway failed up to %v after the kill; want at once", slowest)
	}
	time.Sleep(2 * time.Second) // tasks through the survivor
	ld.stop()

	all := tasks.snapshot()
	unprocessed := func() int {
		n := 0
		for _, c := range all {
			if c.code == codes.OK && done.times(c.id) == 0 {
				n++
			}
		}
		return n
	}
	for wait := time.Now().Add(30 * time.Second); unprocessed() > 0 && time.Now().Before(wait); {
		time.Sleep(50 * time.Millisecond)
	}
	var confirmed, after int
	failed := map[codes.Code]int{}
	for _, c := range all {
		if c.code == codes.OK {
			confirmed++
			if c.start.After(killed) {
				after++
			}
		} else {
			failed[c.code]++
			if c.code != codes.Unavailable {
				t.Errorf("task %s failed with %v; want UNAVAILABLE", c.id, c.code)
			}
		}
	}
	msg := fmt.Sprintf("kill -9 one of two gateways: %d calls in flight on it failed with UNAVAILABLE within %v; tasks: %d submitted, %d confirmed (%d after the kill, through the other gateway), %d lost; not confirmed: %s",
		inFlight, slowest.Round(time.Millisecond), len(all), confirmed, after, unprocessed(), codeCounts(failed))
	t.Log(msg)
	fmt.Println(msg)
	if n := unprocessed(); n > 0 {
		t.Errorf("%d confirmed tasks were never processed: lost", n)
	}
	if after == 0 {
		t.Error("no task was confirmed after the kill; want the other gateway to take them")
	}
}
