package logsvc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
)

// BenchmarkIdleStreams: the resident memory a `warren gateway` process
// (built by the benchmark and run as a process of its own, so that only
// the gateway's memory counts) gains per SubscribeLogs stream with 10,000
// streams open (spread over 16 gRPC connections), each of which received
// its message; and how many queues the broker holds for the gateway's
// exchange. WARREN_BENCH_STREAMS sets the count. WARREN_BENCH_PROFILE=DIR
// runs the gateway with its metrics and profiles on (which adds the metrics
// interceptor to every stream, so the figure is not the default one) and
// writes its heap and goroutine profiles and its runtime metrics at the
// full count to DIR.
func BenchmarkIdleStreams(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("WARREN_BENCH_STREAMS")); err == nil && v > 0 {
		n = v
	}
	const groups, conns = 100, 16
	gw := startGatewayProcess(b)
	clients := make([]warrenv1.LogServiceClient, conns)
	for i := range clients {
		clients[i] = warrenv1.NewLogServiceClient(gw.dial(b))
	}
	for range b.N {
		// Warm-up: the exchange's queue and consumer exist, gRPC and the
		// runtime did their first allocations.
		warm, err := subscribeWith(clients[0], topic, "warm.up")
		if err != nil {
			b.Fatal(err)
		}
		warm.cancel()
		time.Sleep(time.Second)
		rss0 := gw.rss(b)
		mem0 := gw.profile(b, "0")

		t0 := time.Now()
		subs := make([]*sub, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		var failed atomic.Value
		for i := range subs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s, err := subscribeWith(clients[i%conns], topic, fmt.Sprintf("g%d.*", i%groups))
				if err != nil {
					failed.Store(err)
					return
				}
				subs[i] = s
			}()
		}
		wg.Wait()
		setup := time.Since(t0)
		if err, _ := failed.Load().(error); err != nil {
			for _, s := range subs {
				if s != nil {
					s.cancel()
				}
			}
			b.Fatalf("subscribe: %v", err)
		}
		// Each stream receives its message: one per group.
		var got atomic.Int64
		for _, s := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.stream.Recv(); err == nil {
					got.Add(1)
				}
			}()
		}
		for g := range groups {
			if _, err := clients[0].EmitLog(context.Background(), &warrenv1.EmitLogRequest{Exchange: topic, RoutingKey: fmt.Sprintf("g%d.x", g), Body: benchBody}); err != nil {
				b.Fatal(err)
			}
		}
		wg.Wait()
		if int(got.Load()) != n {
			b.Fatalf("%d of %d streams received their message", got.Load(), n)
		}
		time.Sleep(time.Second)
		rssN := gw.rss(b)
		if memN := gw.profile(b, "n"); memN != nil {
			for _, name := range []string{"go_memstats_stack_inuse_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_goroutines"} {
				b.Logf("%s: %.0f at 0, %.0f at %d: %.2f per stream", name, mem0[name], memN[name], n, (memN[name]-mem0[name])/float64(n))
			}
		}
		queues := map[string]bool{}
		bindings := brokertest.Bindings(b, gw.topicExchange)
		for _, bd := range bindings {
			queues[bd.Queue] = true
		}
		for _, s := range subs {
			s.cancel()
		}
		perSub := float64(rssN-rss0) / float64(n) / 1024
		b.ReportMetric(perSub, "rss-KiB/stream")
		b.ReportMetric(float64(len(queues)), "broker-queues")
		b.ReportMetric(setup.Seconds(), "setup-s")
		b.ReportMetric(0, "ns/op")
		b.Logf("%d idle streams on a warren gateway process: RSS %.1f MiB at 0, %.1f MiB at %d: (RSS at %d - RSS at 0) / %d = %.2f KiB per stream (target at most 12); "+
			"the broker holds %d queue(s) with %d binding(s) for the exchange; all %d streams received their message; set up in %v",
			n, float64(rss0)/(1<<20), float64(rssN)/(1<<20), n, n, n, perSub, len(queues), len(bindings), n, setup.Round(time.Millisecond))
		time.Sleep(2 * time.Second) // let the gateway end the streams before the next iteration
	}
}

// gatewayProcess is a `warren gateway` built from this module and run on a
// free port, with exchanges and queues of the benchmark's own.
type gatewayProcess struct {
	cmd           *exec.Cmd
	addr          string
	topicExchange string
	profileDir    string // WARREN_BENCH_PROFILE
	metricsAddr   string // its metrics and profiles, when profileDir is set
}

func startGatewayProcess(b *testing.B) *gatewayProcess {
	b.Helper()
	brokertest.Require(b)
	bin := filepath.Join(b.TempDir(), "warren")
	build := exec.Command("go", "build", "-o", bin, "github.com/warrenrpc/warren/cmd/warren")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	gw := &gatewayProcess{addr: freeAddr(b), topicExchange: brokertest.Name(b, "topic_logs"), profileDir: os.Getenv("WARREN_BENCH_PROFILE")}
	args := []string{"gateway", "--listen", gw.addr, "--amqp-url", brokertest.URL(), "--log-level", "error",
		"--queue-type", "classic",
		"--rpc-queue", brokertest.Name(b, "rpc"), "--task-queue", brokertest.Name(b, "task"),
		"--events-exchange", brokertest.Name(b, "events"),
		"--logs-exchange", brokertest.Name(b, "logs"), "--direct-logs-exchange", brokertest.Name(b, "direct_logs"),
		"--topic-logs-exchange", gw.topicExchange}
	if gw.profileDir != "" {
		gw.metricsAddr = freeAddr(b)
		args = append(args, "--metrics-listen", gw.metricsAddr, "--pprof")
	}
	gw.cmd = exec.Command(bin, args...)
	gw.cmd.Stderr = os.Stderr
	if err := gw.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = gw.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = gw.cmd.Wait(); close(done) }()
		t := time.NewTimer(20 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = gw.cmd.Process.Kill()
			<-done
		}
	})
	health := healthpb.NewHealthClient(gw.dial(b))
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: warrenv1.LogService_ServiceDesc.ServiceName})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return gw
		}
		if time.Now().After(deadline) {
			b.Fatalf("warren gateway not serving after 30s: %v, %v", resp.GetStatus(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeAddr is a free TCP address on the loopback interface.
func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// profile writes the gateway's heap profile (after a GC), its goroutines
// and its runtime metrics to profileDir, when it is set, in files named
// with suffix; it returns the runtime's gauges (go_memstats_*,
// go_goroutines), or nil when profileDir is not set.
func (g *gatewayProcess) profile(b *testing.B, suffix string) map[string]float64 {
	b.Helper()
	if g.profileDir == "" {
		return nil
	}
	gauges := map[string]float64{}
	// The metrics first: the heap profile's GC would change them.
	for _, f := range []struct{ file, path string }{
		{"gateway.metrics." + suffix + ".txt", "/metrics"},
		{"gateway.heap." + suffix + ".prof", "/debug/pprof/heap?gc=1"},
		{"gateway.goroutines." + suffix + ".txt", "/debug/pprof/goroutine?debug=1"},
	} {
		resp, err := http.Get("http://" + g.metricsAddr + f.path)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(g.profileDir, f.file), body, 0o644); err != nil {
			b.Fatal(err)
		}
		if f.path == "/metrics" {
			for _, line := range strings.Split(string(body), "\n") {
				name, v, ok := strings.Cut(line, " ")
				if ok && (strings.HasPrefix(name, "go_memstats_") || name == "go_goroutines") {
					gauges[name], _ = strconv.ParseFloat(v, 64)
				}
			}
		}
	}
	b.Logf("the gateway's profiles are in %s (suffix %s)", g.profileDir, suffix)
	return gauges
}

func (g *gatewayProcess) dial(b *testing.B) *grpc.ClientConn {
	b.Helper()
	cc, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	return cc
}

// rss is the gateway process's VmRSS.
func (g *gatewayProcess) rss(b *testing.B) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS in the gateway's /proc status")
	return 0
}

// BenchmarkEmitUnderChurn: EmitLog's latency (one caller, one call at a
// time, to the topic exchange) with no subscription churn, and while
// subscriptions to the same exchange come and go at up to 1,000 per second
// (each with two keys of 20, so that keys are bound and unbound all the
// time), in alternating rounds of 2s; the p99 of each condition over all
// its rounds, and their ratio.
func BenchmarkEmitUnderChurn(b *testing.B) {
	const rounds, round, rate, workers = 3, 2 * time.Second, 1000, 32
	h := start(b, Config{})
	keySet := make([]string, 20)
	for i := range keySet {
		keySet[i] = fmt.Sprintf("c%d.#", i)
	}
	emitFor := func(d time.Duration) []time.Duration {
		var lat []time.Duration
		for t0 := time.Now(); time.Since(t0) < d; {
			t1 := time.Now()
			if _, err := h.client.EmitLog(context.Background(), &warrenv1.EmitLogRequest{Exchange: topic, RoutingKey: "c1.x", Body: benchBody}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t1))
		}
		return lat
	}
	churn := func(d time.Duration) (cycles int64) {
		tokens := make(chan struct{}, workers)
		var n atomic.Int64
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 2))
				for range tokens {
					s, err := h.trySubscribe(topic, keySet[r.IntN(len(keySet))], keySet[r.IntN(len(keySet))])
					if err != nil {
						b.Errorf("churn subscribe: %v", err)
						continue
					}
					s.cancel()
					n.Add(1)
				}
			}()
		}
		pace(tokens, rate, d)
		close(tokens)
		wg.Wait()
		return n.Load()
	}
	for range b.N {
		var calm, churned []time.Duration
		var cycles int64
		for range rounds {
			runtime.GC()
			calm = append(calm, emitFor(round)...)
			runtime.GC()
			done := make(chan int64)
			go func() { done <- churn(round) }()
			churned = append(churned, emitFor(round)...)
			cycles += <-done
		}
		p99 := func(l []time.Duration) time.Duration {
			slices.Sort(l)
			return l[len(l)*99/100]
		}
		p0, p1 := p99(calm), p99(churned)
		churnRate := float64(cycles) / (rounds * round).Seconds()
		b.ReportMetric(float64(p0.Microseconds()), "p99-µs-calm")
		b.ReportMetric(float64(p1.Microseconds()), "p99-µs-churn")
		b.ReportMetric(float64(p1)/float64(p0), "ratio")
		b.ReportMetric(churnRate, "churn/s")
		b.ReportMetric(0, "ns/op")
		b.Logf("EmitLog p99: %v with no churn (%d calls), %v while %.0f subscriptions/s came and went (%d calls): ratio %.2f (target at most 2)",
			p0.Round(time.Microsecond), len(calm), p1.Round(time.Microsecond), churnRate, len(churned), float64(p1)/float64(p0))
	}
}
