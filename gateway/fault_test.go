package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/worker"
)

// Fault tests: the gateway reaches the broker through a proxy of the
// test's own, which the test breaks; workers connect directly.

func proxiedConfig(url, queue string) Config {
	return Config{
		RPCQueue: queue,
		AMQP:     amqpx.Config{URLs: []string{url}, Heartbeat: time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
	}
}

// startRPCGatewayAt is startRPCGateway with the AMQP URL given.
func startRPCGatewayAt(t testing.TB, url string, cfg Config) *rpcTestGateway {
	t.Helper()
	cfg.AMQP.URLs = []string{url}
	return startRPCGatewayURL(t, cfg)
}

func TestFaultDropFailsInFlightCallsAtOnce(t *testing.T) {
	t.Parallel()
	proxy, url := brokertest.Proxy(t)
	queue := brokertest.Name(t, "rpc")
	got := make(chan struct{}, 1)
	fakeWorker(t, queue, func(*amqp.Channel, amqp.Delivery) { got <- struct{}{} }) // holds every request
	gw := startRPCGatewayAt(t, url, proxiedConfig(url, queue))

	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
		errc <- err
	}()
	<-got
	dropped := time.Now()
	if n := proxy.Drop(); n == 0 {
		t.Fatal("the proxy had no connection to drop")
	}
	err := <-errc
	wantCode(t, err, codes.Unavailable)
	if d := time.Since(dropped); d > time.Second {
		t.Errorf("in-flight call failed %v after the drop (%v after it started), want at once", d, time.Since(start))
	}
	waitFor(t, "reconnection", gw.srv.Connected)
}

func TestFaultOutageFailsFastAndRecoversWithinTwoSeconds(t *testing.T) {
	t.Parallel()
	proxy, url := brokertest.Proxy(t)
	queue := brokertest.Name(t, "rpc")
	startFibWorker(t, queue)
	gw := startRPCGatewayAt(t, url, proxiedConfig(url, queue))
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("before the outage: %v", err)
	}

	proxy.Refuse(true)
	proxy.Drop()
	waitFor(t, "disconnection", func() bool { return !gw.srv.Connected() })
	for range 5 {
		start := time.Now()
		err := call()
		wantCode(t, err, codes.Unavailable)
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Errorf("call during the outage failed after %v, want fast", d)
		}
	}

	proxy.Refuse(false)
	back := time.Now()
	for call() != nil {
		if time.Since(back) > 2*time.Second {
			t.Fatalf("calls still fail %v after the broker came back, want within 2s", time.Since(back))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("calls succeed again %v after the broker came back", time.Since(back).Round(time.Millisecond))
}

func TestFaultBlackHoleIsDetectedByHeartbeats(t *testing.T) {
	t.Parallel()
	proxy, url := brokertest.Proxy(t)
	queue := brokertest.Name(t, "rpc")
	got := make(chan struct{}, 1)
	fakeWorker(t, queue, func(*amqp.Channel, amqp.Delivery) { got <- struct{}{} })
	gw := startRPCGatewayAt(t, url, proxiedConfig(url, queue)) // heartbeat 1s

	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
		errc <- err
	}()
	<-got
	proxy.Blackhole(true)
	silent := time.Now()
	err := <-errc
	wantCode(t, err, codes.Unavailable)
	detected := time.Since(silent)
	t.Logf("black hole detected after %v (heartbeat 1s)", detected.Round(time.Millisecond))
	if detected > 5*time.Second {
		t.Errorf("black hole detected after %v, want within the heartbeat timeout", detected)
	}
	proxy.Blackhole(false)
	proxy.Drop() // the stuck sockets; new ones pass
	waitFor(t, "reconnection", gw.srv.Connected)
}

// TestFaultReconnectCyclesLeakNoGoroutines is not parallel: goleak compares
// the whole process's goroutines.
func TestFaultReconnectCyclesLeakNoGoroutines(t *testing.T) {
	proxy, url := brokertest.Proxy(t)
	queue := brokertest.Name(t, "rpc")
	cfg := proxiedConfig(url, queue)
	cfg.Tasks = TaskConfig{Queue: brokertest.Name(t, "tasks"), EventsExchange: brokertest.Name(t, "events")}
	before := goleak.IgnoreCurrent()

	// The workers reach the broker through the proxy too, so every cycle
	// breaks and restores every connection warren has.
	done := make(chan string, 16)
	fibW := worker.NewFibonacci(worker.FibonacciConfig{Queue: queue, Logger: quietLog})
	taskW := worker.NewTask(worker.TaskConfig{
		Queue: cfg.Tasks.Queue, EventsExchange: cfg.Tasks.EventsExchange, Logger: quietLog,
		Handler: func(_ context.Context, body []byte) error { done <- string(body); return nil },
	})
	sup := amqpx.New(amqpx.Config{URLs: []string{url}, Heartbeat: time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: quietLog}, fibW, taskW)
	supCtx, stopSup := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() { _ = sup.Run(supCtx); close(supDone) }()
	waitFor(t, "workers connected", sup.Connected)

	gw, stop := serveRPCGateway(t, cfg)
	waitFor(t, "connection", gw.srv.Connected)
	tasks := warrenv1.NewTaskServiceClient(gw.conn)
	for i := range 20 {
		proxy.Drop()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 10})
			if err == nil {
				_, err = tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: fmt.Sprint("cycle ", i)})
			}
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: no successful call within 10s: %v", i, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("cycle %d: the task was not processed within 10s", i)
		}
	}
	stop()
	stopSup()
	<-supDone
	goleak.VerifyNone(t, before)
}
