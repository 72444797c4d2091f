package fibsvc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/fib"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/worker"
)

var replyModes = []core.ReplyMode{core.ReplyDirect, core.ReplyQueue}

func TestFibonacciEndToEnd(t *testing.T) {
	for _, mode := range replyModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Name(t, "rpc")
			startFibWorker(t, queue)
			gw := startRPCGateway(t, gwConfig{RPCQueue: queue, ReplyMode: mode})
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
			gw := startRPCGateway(t, gwConfig{RPCQueue: queue, ReplyMode: mode})
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
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue})
	_, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: fib.MaxN + 1})
	warrentest.WantCode(t, err, codes.InvalidArgument)
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
			gw := startRPCGateway(t, gwConfig{RPCQueue: queue})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
			elapsed := time.Since(start)
			warrentest.WantCode(t, err, codes.Unavailable)
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
	stop := warrentest.FakeWorker(t, queue, func(*amqp.Channel, amqp.Delivery) { got <- struct{}{} }) // never replies
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue, PresenceInterval: 50 * time.Millisecond})
	go func() { <-got; stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
	warrentest.WantCode(t, err, codes.Unavailable)
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
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue, PresenceInterval: time.Hour})
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
	warrentest.WantCode(t, err, codes.Unavailable)
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("UNAVAILABLE after %v, want at once", elapsed)
	}
}

func TestFibonacciDeadlineTravels(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	seen := make(chan amqp.Delivery, 1)
	warrentest.FakeWorker(t, queue, func(ch *amqp.Channel, d amqp.Delivery) {
		seen <- d
		warrentest.Reply(t, ch, d, amqp.Publishing{CorrelationId: d.CorrelationId, Body: []byte("832040")})
	})
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue})
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
	warrentest.FakeWorker(t, queue, func(_ *amqp.Channel, d amqp.Delivery) { seen <- d }) // never replies
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue, DefaultTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: 30})
	elapsed := time.Since(start)
	warrentest.WantCode(t, err, codes.DeadlineExceeded)
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
			warrentest.FakeWorker(t, queue, func(ch *amqp.Channel, d amqp.Delivery) {
				p := tt.reply
				p.CorrelationId = d.CorrelationId
				warrentest.Reply(t, ch, d, p)
			})
			gw := startRPCGateway(t, gwConfig{RPCQueue: queue})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
			warrentest.WantCode(t, err, tt.wantCode)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", msg, tt.wantMsg)
			}
		})
	}
}

func TestFibonacciUnknownAndDuplicateRepliesAreDropped(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	warrentest.FakeWorker(t, queue, func(ch *amqp.Channel, d amqp.Delivery) {
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
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue})
	for _, n := range []uint32{30, 31, 32} {
		resp, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: n})
		if err != nil {
			t.Fatalf("Fibonacci(%d): %v", n, err)
		}
		if got, want := resp.GetValue(), fib.Compute(n); got != want {
			t.Fatalf("Fibonacci(%d) = %s, want %s", n, got, want)
		}
	}
	eventually(t, "6 dropped replies", func() bool { return gw.svc.Client().Dropped() == 6 })
}

// TestHealthFollowsTheWorkers: FibonacciService's health is what its
// callers get: NOT_SERVING while no worker consumes the queue (every call
// would fail with UNAVAILABLE), SERVING while one does; the server's
// overall status follows the broker connection alone.
func TestHealthFollowsTheWorkers(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue, PresenceInterval: 50 * time.Millisecond})
	health := healthpb.NewHealthClient(gw.conn)
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health check %q: %v", service, err)
		}
		return resp.GetStatus()
	}
	const name = "warren.v1.FibonacciService"
	eventually(t, "FibonacciService NOT_SERVING without a worker", func() bool {
		return check(name) == healthpb.HealthCheckResponse_NOT_SERVING
	})
	if got := check(""); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("overall health %v while connected, want SERVING", got)
	}
	_, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: 3})
	warrentest.WantCode(t, err, codes.Unavailable)

	w := fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: queue, Logger: warrentest.QuietLog})
	workers := warrentest.StartWorkers(t, worker.Config{}, w)
	eventually(t, "FibonacciService SERVING with a worker", func() bool {
		return check(name) == healthpb.HealthCheckResponse_SERVING
	})
	if _, err := gw.fib.Fibonacci(context.Background(), &warrenv1.FibonacciRequest{N: 3}); err != nil {
		t.Fatalf("Fibonacci with a worker: %v", err)
	}
	workers.Stop()
	eventually(t, "FibonacciService NOT_SERVING after the worker left", func() bool {
		return check(name) == healthpb.HealthCheckResponse_NOT_SERVING
	})
}
