package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/fib"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/worker"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// rpcTestGateway is a gateway served over bufconn for one test.
type rpcTestGateway struct {
	srv  *Server
	conn *grpc.ClientConn
	fib  warrenv1.FibonacciServiceClient
}

// startRPCGateway serves a gateway for cfg.RPCQueue on the test broker
// until the test ends.
func startRPCGateway(t testing.TB, cfg Config) *rpcTestGateway {
	t.Helper()
	cfg.AMQP.URLs = []string{brokertest.Require(t)}
	return startRPCGatewayURL(t, cfg)
}

// startRPCGatewayURL serves a gateway for cfg until the test ends.
func startRPCGatewayURL(t testing.TB, cfg Config) *rpcTestGateway {
	t.Helper()
	gw, stop := serveRPCGateway(t, cfg)
	t.Cleanup(stop)
	waitFor(t, "gateway connected", gw.srv.Connected)
	return gw
}

// serveRPCGateway serves a gateway over bufconn and returns it with a
// client, and a func that stops both and waits for them.
func serveRPCGateway(t testing.TB, cfg Config) (*rpcTestGateway, func()) {
	t.Helper()
	cfg.AMQP.Name = "warren-test-" + t.Name()
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	// The other services' entities get this test's names too: the shared
	// broker's task_queue and log exchanges are nobody's test fixture.
	if cfg.Tasks.Queue == "" {
		cfg.Tasks.Queue = brokertest.Name(t, "tasks")
		cfg.Tasks.EventsExchange = brokertest.Name(t, "events")
	}
	if cfg.Logs.FanoutExchange == "" {
		cfg.Logs.FanoutExchange = brokertest.Name(t, "logs")
		cfg.Logs.DirectExchange = brokertest.Name(t, "direct_logs")
		cfg.Logs.TopicExchange = brokertest.Name(t, "topic_logs")
	}
	srv := New(cfg)
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = conn.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve returned %v", err)
			}
		})
	}
	return &rpcTestGateway{srv: srv, conn: conn, fib: warrenv1.NewFibonacciServiceClient(conn)}, stop
}

// startFibWorker runs a warren Fibonacci worker on queue until the test ends.
func startFibWorker(t testing.TB, queue string) *worker.Fibonacci {
	t.Helper()
	w := worker.NewFibonacci(worker.FibonacciConfig{Queue: queue, Logger: quietLog})
	sup := amqpx.New(amqpx.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-worker", Logger: quietLog}, w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sup.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "worker connected", sup.Connected)
	return w
}

// fakeWorker consumes queue on a connection of its own and hands every
// delivery to handle. It returns a func that stops consuming.
func fakeWorker(t testing.TB, queue string, handle func(ch *amqp.Channel, d amqp.Delivery)) (stop func()) {
	t.Helper()
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatalf("declare %s: %v", queue, err)
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", queue, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for d := range ds {
			handle(ch, d)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { _ = ch.Close(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func reply(t testing.TB, ch *amqp.Channel, d amqp.Delivery, p amqp.Publishing) {
	t.Helper()
	if err := ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, p); err != nil {
		t.Errorf("publish reply: %v", err)
	}
	_ = d.Ack(false)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (%v), want %v", got, err, want)
	}
}

var replyModes = []ReplyMode{ReplyDirect, ReplyQueue}

func TestFibonacciEndToEnd(t *testing.T) {
	for _, mode := range replyModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Name(t, "rpc")
			startFibWorker(t, queue)
			gw := startRPCGateway(t, Config{RPCQueue: queue, ReplyMode: mode})
			for _, n := range []uint32{0, 1, 2, 30, 93, 94, 1000, fib.MaxN} {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: n})
				cancel()
				if err != nil {
					t.Fatalf("Fibonacci(%d): %v", n, err)
				}
				if got, want := resp.GetValue(), fib.Compute(n); got != want {
					t.Fatalf("Fibonacci(%d) = %.40s (%d digits), want %.40s (%d digits)", n, got, len(got), want, len(want))
				}
			}
		})
	}
}

func TestFibonacciConcurrentCallsGetTheirOwnReplies(t *testing.T) {
	for _, mode := range replyModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Name(t, "rpc")
			startFibWorker(t, queue)
			startFibWorker(t, queue) // competing workers
			gw := startRPCGateway(t, Config{RPCQueue: queue, ReplyMode: mode})
			var wg sync.WaitGroup
			errs := make(chan error, 512)
			for i := range 512 {
				wg.Go(func() {
					n := uint32(i % 300)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					resp, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: n})
					if err != nil {
						errs <- fmt.Errorf("Fibonacci(%d): %w", n, err)
						return
					}
					if got, want := resp.GetValue(), fib.Compute(n); got != want {
						errs <- fmt.Errorf("Fibonacci(%d) = %s, want %s", n, got, want)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestFibonacciTooLargeRejectedBeforePublishing(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	gw := startRPCGateway(t, Config{RPCQueue: queue})
	_, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: fib.MaxN + 1})
	wantCode(t, err, codes.InvalidArgument)
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 0 {
		t.Errorf("queue holds %d messages after a rejected call, want 0", q.Messages)
	}
}

func TestFibonacciWithoutWorkerFailsFast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		declare bool
		want    string
	}{
		{"queue missing", false, "does not exist"},
		{"queue without consumers", true, "no worker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Name(t, "rpc")
			if tt.declare {
				if _, err := brokertest.Channel(t).QueueDeclare(queue, false, false, false, false, nil); err != nil {
					t.Fatal(err)
				}
			}
			gw := startRPCGateway(t, Config{RPCQueue: queue})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
			elapsed := time.Since(start)
			wantCode(t, err, codes.Unavailable)
			if !strings.Contains(status.Convert(err).Message(), tt.want) {
				t.Errorf("message %q, want it to contain %q", status.Convert(err).Message(), tt.want)
			}
			if elapsed > 500*time.Millisecond {
				t.Errorf("UNAVAILABLE after %v, want well under a second", elapsed)
			}
		})
	}
}

func TestFibonacciPendingCallFailsWhenLastWorkerLeaves(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	got := make(chan struct{}, 1)
	stop := fakeWorker(t, queue, func(*amqp.Channel, amqp.Delivery) { got <- struct{}{} }) // never replies
	gw := startRPCGateway(t, Config{RPCQueue: queue, PresenceInterval: 50 * time.Millisecond})
	go func() { <-got; stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
	wantCode(t, err, codes.Unavailable)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("UNAVAILABLE after %v, want within about the presence interval", elapsed)
	}
}

func TestFibonacciReturnedRequestFailsFast(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	startFibWorker(t, queue)
	// A long presence interval: the gateway still believes in the worker
	// after the queue is gone, so only the mandatory return can tell.
	gw := startRPCGateway(t, Config{RPCQueue: queue, PresenceInterval: time.Hour})
	if _, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: 3}); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if _, err := brokertest.Channel(t).QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
	wantCode(t, err, codes.Unavailable)
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("UNAVAILABLE after %v, want at once", elapsed)
	}
}

func TestFibonacciDeadlineTravels(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	seen := make(chan amqp.Delivery, 1)
	fakeWorker(t, queue, func(ch *amqp.Channel, d amqp.Delivery) {
		seen <- d
		reply(t, ch, d, amqp.Publishing{CorrelationId: d.CorrelationId, Body: []byte("832040")})
	})
	gw := startRPCGateway(t, Config{RPCQueue: queue})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	want, _ := ctx.Deadline()
	resp, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
	if err != nil || resp.GetValue() != "832040" {
		t.Fatalf("Fibonacci(30) = %v, %v; want 832040", resp, err)
	}
	d := <-seen
	if string(d.Body) != "30" || d.ReplyTo == "" || d.CorrelationId == "" {
		t.Errorf("request body %q reply_to %q correlation_id %q; want the tutorial's form", d.Body, d.ReplyTo, d.CorrelationId)
	}
	var ttl int
	if _, err := fmt.Sscan(d.Expiration, &ttl); err != nil || ttl < 2500 || ttl > 3000 {
		t.Errorf("expiration %q, want the remaining ~3000 ms", d.Expiration)
	}
	got, ok := wire.Deadline(d.Headers)
	if !ok || got.Sub(want).Abs() > 50*time.Millisecond {
		t.Errorf("deadline header %v (present %v), want %v", got, ok, want)
	}
}

func TestFibonacciDefaultTimeout(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	seen := make(chan amqp.Delivery, 1)
	fakeWorker(t, queue, func(_ *amqp.Channel, d amqp.Delivery) { seen <- d }) // never replies
	gw := startRPCGateway(t, Config{RPCQueue: queue, DefaultTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: 30})
	elapsed := time.Since(start)
	wantCode(t, err, codes.DeadlineExceeded)
	if elapsed < 250*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("DEADLINE_EXCEEDED after %v, want about the 300ms default", elapsed)
	}
	d := <-seen
	if _, ok := wire.Deadline(d.Headers); !ok || d.Expiration == "" {
		t.Errorf("a call without deadline carried expiration %q and headers %v; want the default's", d.Expiration, d.Headers)
	}
}

func TestFibonacciWorkerErrorsBecomeStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		reply    amqp.Publishing
		wantCode codes.Code
		wantMsg  string
	}{
		{"error reply", amqp.Publishing{Headers: wire.ErrorHeaders(codes.FailedPrecondition, "not today"), Body: []byte("error: not today")}, codes.FailedPrecondition, "not today"},
		{"unknown code name", amqp.Publishing{Headers: amqp.Table{wire.HeaderErrorCode: "WAT"}}, codes.Unknown, "WAT"},
		{"non-decimal body", amqp.Publishing{Body: []byte("\xff\xfe")}, codes.Internal, "not a decimal"},
		{"empty body", amqp.Publishing{}, codes.Internal, "not a decimal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Name(t, "rpc")
			fakeWorker(t, queue, func(ch *amqp.Channel, d amqp.Delivery) {
				p := tt.reply
				p.CorrelationId = d.CorrelationId
				reply(t, ch, d, p)
			})
			gw := startRPCGateway(t, Config{RPCQueue: queue})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
			wantCode(t, err, tt.wantCode)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", msg, tt.wantMsg)
			}
		})
	}
}

func TestFibonacciUnknownAndDuplicateRepliesAreDropped(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	fakeWorker(t, queue, func(ch *amqp.Channel, d amqp.Delivery) {
		n, _ := fib.ParseRequest(d.Body)
		// A stranger's reply first, then the right one twice, the second
		// one wrong: only the first matching reply may count.
		for _, p := range []amqp.Publishing{
			{CorrelationId: "no-such-call", Body: []byte("666")},
			{CorrelationId: d.CorrelationId, Body: []byte(fib.Compute(n))},
			{CorrelationId: d.CorrelationId, Body: []byte("13")},
		} {
			if err := ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, p); err != nil {
				t.Errorf("publish: %v", err)
			}
		}
		_ = d.Ack(false)
	})
	gw := startRPCGateway(t, Config{RPCQueue: queue})
	for _, n := range []uint32{30, 31, 32} {
		resp, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: n})
		if err != nil {
			t.Fatalf("Fibonacci(%d): %v", n, err)
		}
		if got, want := resp.GetValue(), fib.Compute(n); got != want {
			t.Fatalf("Fibonacci(%d) = %s, want %s", n, got, want)
		}
	}
	waitFor(t, "6 dropped replies", func() bool { return gw.srv.rpc.dropped.Load() == 6 })
}

func TestHealthFollowsTheBrokerConnection(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	gw := startRPCGateway(t, Config{RPCQueue: queue, AMQP: amqpx.Config{MinBackoff: 50 * time.Millisecond}})
	health := healthpb.NewHealthClient(gw.conn)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "warren.v1.FibonacciService"})
		if err != nil {
			t.Fatalf("health check: %v", err)
		}
		return resp.GetStatus()
	}
	if got := check(); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v while connected, want SERVING", got)
	}
	// Close the gateway's connection from the broker's side.
	closeConnections(t, "warren-test-"+t.Name())
	waitFor(t, "NOT_SERVING", func() bool { return check() == healthpb.HealthCheckResponse_NOT_SERVING })
	waitFor(t, "SERVING again after reconnect", func() bool { return check() == healthpb.HealthCheckResponse_SERVING })
}

// closeConnections makes the broker close every connection named name.
func closeConnections(t testing.TB, name string) {
	t.Helper()
	closed := 0
	deadline := time.Now().Add(10 * time.Second)
	for closed == 0 && time.Now().Before(deadline) {
		n, err := brokertest.CloseConnections(name)
		if err != nil {
			t.Fatalf("close connection %q: %v", name, err)
		}
		closed = n
		if closed == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if closed == 0 {
		t.Fatalf("no connection named %q to close", name)
	}
}

func TestNotConnectedIsUnavailable(t *testing.T) {
	t.Parallel()
	c := newRPCClient(rpcConfig{queue: "q", defaultTimeout: time.Second, log: quietLog})
	_, err := c.Call(context.Background(), []byte("1"))
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Call before connecting: %v, want ErrNotConnected", err)
	}
	wantCode(t, toStatus(err), codes.Unavailable)
}

// Long-lived streams that hold the gRPC server's stream workers must not
// hold up calls: beyond the pool, calls run on goroutines of their own.
func TestStreamWorkersHeldByStreamsDoNotBlockCalls(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	startFibWorker(t, queue)
	gw := startRPCGateway(t, Config{RPCQueue: queue, StreamWorkers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	queues := warrenv1.NewQueueServiceClient(gw.conn)
	hello := brokertest.Name(t, "hola")
	for range 2 { // the first holds the one worker for as long as it lasts
		stream, err := queues.Receive(ctx, &warrenv1.ReceiveRequest{Queue: hello})
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if _, err := stream.Header(); err != nil {
			t.Fatalf("Receive header: %v", err)
		}
	}
	var wg sync.WaitGroup
	for n := range uint32(16) {
		wg.Go(func() {
			resp, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: n})
			if err != nil {
				t.Errorf("Fibonacci(%d) while streams hold the workers: %v", n, err)
				return
			}
			if got, want := resp.GetValue(), fib.Compute(n); got != want {
				t.Errorf("Fibonacci(%d) = %s, want %s", n, got, want)
			}
		})
	}
	wg.Wait()
}
