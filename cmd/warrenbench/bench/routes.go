package bench

// The generic path's figures: a team's own proto service, served by a
// gateway that knows it from a descriptor set alone (package route) and a
// worker on warren's SDK (worker.Server), next to warren's hand-written
// FibonacciService and to raw amqp091-go, all doing the same work.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	benchfibv1 "github.com/warrenrpc/warren/cmd/warrenbench/bench/gen/benchfib/v1"
	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/fib"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/route"
	"github.com/warrenrpc/warren/worker"
)

// fibServer is benchfib.v1.FibService on the SDK: the work of
// fibsvc.Handler, with the request and reply as protobuf messages instead
// of decimal text.
type fibServer struct {
	benchfibv1.UnimplementedFibServiceServer
}

func (fibServer) Fibonacci(_ context.Context, req *benchfibv1.FibonacciRequest) (*benchfibv1.FibonacciResponse, error) {
	if req.GetN() > fib.MaxN {
		return nil, core.Argumentf("n = %d is larger than %d", req.GetN(), fib.MaxN)
	}
	return &benchfibv1.FibonacciResponse{Value: fib.Compute(req.GetN())}, nil
}

// routesPrefix is the run's prefix of every queue the generic path's
// benchmark declares.
func routesPrefix() string { return fmt.Sprintf("warren.bench.routes.%d.", os.Getpid()) }

// routeQueues are the queues of the benchmark run under prefix: the
// hand-written worker's, the routed method's (from its route, as the
// gateway and the SDK name it), and the raw worker's.
func routeQueues(prefix string) (handWritten, routed, raw string, err error) {
	methods, err := route.Methods(benchfibv1.File_benchfib_v1_fib_proto.Services().ByName("FibService"))
	if err != nil {
		return "", "", "", err
	}
	return prefix + "rpc", route.WithPrefix(methods, prefix)[0].Queue, prefix + "raw", nil
}

// writeDescriptorSet writes the FileDescriptorSet of files and everything
// they import (route.FileSet), as `buf build -o` would, to a file in dir
// and returns its path.
func writeDescriptorSet(dir string, files ...protoreflect.FileDescriptor) (string, error) {
	b, err := proto.Marshal(route.FileSet(files...))
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "set.binpb")
	return path, os.WriteFile(path, b, 0o644)
}

// routeTarget is a gateway serving benchfib.v1.FibService from a
// descriptor set, on loopback TCP.
type routeTarget struct {
	client benchfibv1.FibServiceClient
	close  func()
}

// startRouteGateway serves the routed services of the descriptor set at
// path with their queues under prefix, with the hand-written gateway's
// configuration (startGateway: reply queue, the gateway's defaults).
func startRouteGateway(url, prefix, path string) (*routeTarget, error) {
	svcs, err := route.NewServices(route.Config{Prefix: prefix, ReplyMode: core.ReplyQueue, Logger: quiet}, path)
	if err != nil {
		return nil, err
	}
	var gs []gateway.Service
	for _, s := range svcs {
		gs = append(gs, s)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := gateway.New(gateway.Config{
		AMQP:   core.Config{URLs: []string{url}, Name: "warren-bench-route-gateway"},
		Logger: quiet,
	}, gs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, lis); close(done) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		<-done
		return nil, err
	}
	g := &routeTarget{client: benchfibv1.NewFibServiceClient(conn), close: func() { _ = conn.Close(); cancel(); <-done }}
	for range 200 {
		if err := g.call(context.Background()); err == nil {
			return g, nil
		}
		sleep()
	}
	g.close()
	return nil, errors.New("route gateway did not start answering")
}

func (g *routeTarget) call(ctx context.Context) error {
	resp, err := g.client.Fibonacci(ctx, &benchfibv1.FibonacciRequest{N: benchN})
	if err != nil {
		return err
	}
	if resp.GetValue() != "832040" {
		return fmt.Errorf("routed fib(%d) = %q", benchN, resp.GetValue())
	}
	return nil
}

// startSDKWorker serves fibServer on worker.Server, with its queues under
// prefix and the SDK's defaults (prefetch 64, GOMAXPROCS handlers).
func startSDKWorker(url, prefix string) (stop func(), err error) {
	srv := worker.NewServer(worker.ServerConfig{Prefix: prefix})
	benchfibv1.RegisterFibServiceServer(srv, fibServer{})
	g := worker.NewGroup(worker.Config{AMQP: core.Config{URLs: []string{url}, Name: "warren-bench-sdk-worker"}, Logger: quiet}, srv)
	return runGroup(g, "SDK worker")
}

// startRawWorker is the SDK worker's baseline: the same work written
// directly on amqp091-go the way a careful hand would, shaped like
// core.Server: one connection, the queue declared as the SDK declares a
// classic route's (durable), manual acknowledgements with the SDK's
// default prefetch (64), GOMAXPROCS goroutines on the one delivery
// channel, each decoding the protobuf request, computing fib(n),
// encoding the reply, publishing it to reply_to with the correlation id
// on the consuming channel, and acknowledging the request.
func startRawWorker(url, queue string) (stop func(), err error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		_, err = ch.QueueDeclare(queue, true, false, false, false, nil)
	}
	if err == nil {
		err = ch.Qos(64, 0, false)
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(queue, "warren-bench-raw-worker", false, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	replyType := string((&benchfibv1.FibonacciResponse{}).ProtoReflect().Descriptor().FullName())
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for d := range deliveries {
				var req benchfibv1.FibonacciRequest
				if err := proto.Unmarshal(d.Body, &req); err != nil || req.GetN() > fib.MaxN {
					_ = d.Reject(false)
					continue
				}
				body, err := proto.Marshal(&benchfibv1.FibonacciResponse{Value: fib.Compute(req.GetN())})
				if err == nil {
					err = ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, amqp.Publishing{
						ContentType:   wire.ContentTypeProtobuf,
						Type:          replyType,
						CorrelationId: d.CorrelationId,
						Body:          body,
					})
				}
				if err != nil {
					return // the channel is gone: the broker requeues the request
				}
				_ = d.Ack(false)
			}
		})
	}
	// Closing the connection closes the delivery channel, which ends the
	// goroutines.
	return func() { _ = conn.Close(); wg.Wait() }, nil
}

// roundTrip publishes p to queue as one of c's requests and returns the
// reply's body: rawClient.call for any queue and body.
func (c *rawClient) roundTrip(ctx context.Context, queue string, p amqp.Publishing) ([]byte, error) {
	id := c.prefix + strconv.FormatUint(c.seq.Add(1), 36)
	done := make(chan []byte, 1)
	c.mu.Lock()
	c.pending[id] = done
	c.mu.Unlock()
	p.CorrelationId, p.ReplyTo = id, c.replyTo
	ch := c.pubs[int(c.next.Add(1))%len(c.pubs)]
	if err := ch.PublishWithContext(ctx, "", queue, false, false, p); err != nil {
		return nil, err
	}
	select {
	case body := <-done:
		return body, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// protoCall is a callFunc that sends c's protobuf FibonacciRequest to
// queue and checks the reply.
func (c *rawClient) protoCall(queue string) callFunc {
	body, err := proto.Marshal(&benchfibv1.FibonacciRequest{N: benchN})
	if err != nil {
		panic(err) // a message of one uint32 field always encodes
	}
	reqType := string((&benchfibv1.FibonacciRequest{}).ProtoReflect().Descriptor().FullName())
	return func(ctx context.Context) error {
		b, err := c.roundTrip(ctx, queue, amqp.Publishing{ContentType: wire.ContentTypeProtobuf, Type: reqType, Body: body})
		if err != nil {
			return err
		}
		var resp benchfibv1.FibonacciResponse
		if err := proto.Unmarshal(b, &resp); err != nil {
			return fmt.Errorf("reply to %s: %w", queue, err)
		}
		if resp.GetValue() != "832040" {
			return fmt.Errorf("%s: fib(%d) = %q", queue, benchN, resp.GetValue())
		}
		return nil
	}
}

// deleteQueues deletes queues, each on a channel of its own (a missing
// queue closes the channel).
func deleteQueues(url string, queues ...string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
}

// Routes runs the generic path's benchmark and prints its figures to w,
// under the runtime's default GOMAXPROCS:
//
//   - benchfib.v1.FibService.Fibonacci on the generic path (a gateway
//     serving it from a descriptor set written now, and the SDK worker)
//     next to warren's hand-written FibonacciService (its gateway and
//     worker) and the raw amqp091-go client on the hand-written worker:
//     the generic path's calls/s at c=64 as a ratio of the hand-written
//     path's, and its p50 at c=1 minus the hand-written p50, the two
//     called in turn by one caller (loadInTurn) and, for reference,
//     measured apart;
//   - the SDK worker next to a raw amqp091-go worker doing the same work,
//     both driven by the raw client at c=64 with protobuf requests: the
//     ratio of their calls/s.
//
// Every queue it declares is named after the run and deleted at the end.
func Routes(ctx context.Context, w io.Writer, o Options) error {
	o = o.withDefaults()
	procs := procsNamer(setProcs(0))(0)
	prefix := routesPrefix()
	fibQueue, routedQueue, rawQueue, err := routeQueues(prefix)
	if err != nil {
		return err
	}
	// Deferred first, so that it runs last, once the gateways and workers
	// are gone.
	defer deleteQueues(o.URL, fibQueue, routedQueue, rawQueue)

	dir, err := os.MkdirTemp("", "warrenbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	set, err := writeDescriptorSet(dir, benchfibv1.File_benchfib_v1_fib_proto)
	if err != nil {
		return err
	}

	stopFib, err := startWorker(o.URL, fibQueue)
	if err != nil {
		return err
	}
	defer stopFib()
	stopSDK, err := startSDKWorker(o.URL, prefix)
	if err != nil {
		return err
	}
	defer stopSDK()
	stopRaw, err := startRawWorker(o.URL, rawQueue)
	if err != nil {
		return err
	}
	defer stopRaw()

	hand, err := startGateway(o.URL, fibQueue, gatewaySetup{mode: core.ReplyQueue})
	if err != nil {
		return err
	}
	defer hand.close()
	generic, err := startRouteGateway(o.URL, prefix, set)
	if err != nil {
		return err
	}
	defer generic.close()
	raw, err := newRawClient(o.URL, fibQueue, core.ReplyQueue)
	if err != nil {
		return err
	}
	defer raw.close()

	type subject struct {
		name string
		c    int
		call callFunc
	}
	var subjects []subject
	for _, c := range []int{1, 64} {
		subjects = append(subjects,
			subject{"raw-queue", c, raw.call},
			subject{"hand-written", c, hand.call},
			subject{"generic", c, generic.call})
	}
	subjects = append(subjects,
		subject{"raw-client/sdk-worker", 64, raw.protoCall(routedQueue)},
		subject{"raw-client/raw-worker", 64, raw.protoCall(rawQueue)})

	// results[subject][concurrency] holds one Result per round; turns
	// holds each round's p50s of the hand-written and the generic path
	// called in turn.
	results := map[string]map[int][]Result{}
	var turns [][]Result
	fmt.Fprintf(w, "\nGeneric path benchmark: benchfib.v1.FibService from a descriptor set on worker.Server, n=%d, %s, %v per measurement, %d rounds, medians\n",
		benchN, procs, o.Duration, o.Rounds)
	for round := range o.Rounds {
		for _, s := range subjects {
			r := load(ctx, s.c, o.Duration, s.call)
			if r.Err != nil {
				return fmt.Errorf("%s at concurrency %d: %w", s.name, s.c, r.Err)
			}
			if results[s.name] == nil {
				results[s.name] = map[int][]Result{}
			}
			results[s.name][s.c] = append(results[s.name][s.c], r)
			fmt.Fprintf(w, "  round %d  %-22s c=%-3d %9.0f calls/s  p50 %8v\n", round+1, s.name, s.c, r.Rate, r.P50.Round(time.Microsecond))
		}
		rs := loadInTurn(ctx, o.Duration, hand.call, generic.call)
		if err := resultsErr(rs); err != nil {
			return fmt.Errorf("hand-written and generic in turn: %w", err)
		}
		turns = append(turns, rs)
		fmt.Fprintf(w, "  round %d  in turn, c=1: p50 hand-written %v, generic %v\n", round+1, rs[0].P50.Round(time.Microsecond), rs[1].P50.Round(time.Microsecond))
	}
	fmt.Fprintln(w, "medians:")
	for _, s := range subjects {
		r := median(results[s.name][s.c])
		fmt.Fprintf(w, "  %-22s c=%-3d %9.0f calls/s  p50 %8v  %5.1f allocs, %6.0f B per call (the bench process)\n",
			s.name, s.c, r.Rate, r.P50.Round(time.Microsecond), r.Allocs, r.Bytes)
	}

	// Per round, then the median over rounds, as in Fibonacci's report.
	perRound := func(f func(i int) float64) float64 {
		xs := make([]float64, o.Rounds)
		for i := range xs {
			xs[i] = f(i)
		}
		return medianOf(xs)
	}
	rate := func(name string, c, i int) float64 { return results[name][c][i].Rate }
	p50 := func(name string, i int) time.Duration { return results[name][1][i].P50 }
	fmt.Fprintln(w, "ratios (per round, then the median over rounds):")
	ratio := perRound(func(i int) float64 { return rate("generic", 64, i) / rate("hand-written", 64, i) })
	fmt.Fprintf(w, "  generic path c=64: generic = %.2f x hand-written calls/s (%s the target of 1.00), %.2f x T_raw\n",
		ratio, targetVerdict(ratio >= 1.0), perRound(func(i int) float64 { return rate("generic", 64, i) / rate("raw-queue", 64, i) }))
	// At c=1 the two paths are called in turn by one caller, so that the
	// machine's drift from one measurement to the next (tens of µs here
	// between two identical gateways measured apart) hits both alike.
	extra := time.Duration(perRound(func(i int) float64 { return float64(turns[i][1].P50 - turns[i][0].P50) }))
	fmt.Fprintf(w, "  generic path c=1:  p50 generic - p50 hand-written = %v, called in turn (%s the target of 20µs); measured apart: %v; p50 generic - p50 raw = %v\n",
		extra.Round(time.Microsecond), targetVerdict(extra <= 20*time.Microsecond),
		time.Duration(perRound(func(i int) float64 { return float64(p50("generic", i) - p50("hand-written", i)) })).Round(time.Microsecond),
		time.Duration(perRound(func(i int) float64 { return float64(p50("generic", i) - p50("raw-queue", i)) })).Round(time.Microsecond))
	ratio = perRound(func(i int) float64 {
		return rate("raw-client/sdk-worker", 64, i) / rate("raw-client/raw-worker", 64, i)
	})
	fmt.Fprintf(w, "  SDK worker c=64: worker.Server = %.2f x a raw amqp091-go worker's calls/s, same raw client, same work (%s the target of 0.90)\n",
		ratio, targetVerdict(ratio >= 0.9))
	return nil
}

// loadInTurn makes one call at a time for d, to each of calls in turn, and
// reports each one's rate and median latency, after a warm-up as load's: a
// paired measurement at concurrency 1. Each call follows a call to
// another subject, so none finds its own goroutines warmer than the
// others do. The first error ends the run.
func loadInTurn(ctx context.Context, d time.Duration, calls ...callFunc) []Result {
	run := func(d time.Duration, record bool) []Result {
		lat := make([][]time.Duration, len(calls))
		start := time.Now()
		for i := 0; time.Since(start) < d; i++ {
			k := i % len(calls)
			t0 := time.Now()
			if err := calls[k](ctx); err != nil {
				rs := make([]Result, len(calls))
				rs[k].Err = err
				return rs
			}
			if record {
				lat[k] = append(lat[k], time.Since(t0))
			}
		}
		elapsed := time.Since(start)
		rs := make([]Result, len(calls))
		if !record {
			return rs
		}
		for k, l := range lat {
			if len(l) == 0 {
				rs[k].Err = fmt.Errorf("no call completed in %v", d)
				continue
			}
			slices.Sort(l)
			rs[k] = Result{Rate: float64(len(l)) / elapsed.Seconds(), P50: l[len(l)/2]}
		}
		return rs
	}
	if rs := run(d/5, false); resultsErr(rs) != nil {
		return rs
	}
	return run(d, true)
}

// resultsErr is the error of any of rs.
func resultsErr(rs []Result) error {
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.Err)
	}
	return errors.Join(errs...)
}

// targetVerdict says whether a figure meets its target.
func targetVerdict(meets bool) string {
	if meets {
		return "meets"
	}
	return "MISSES"
}
