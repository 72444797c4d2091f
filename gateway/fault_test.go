package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// Fault tests: the gateway reaches the broker through a proxy of the
// test's own, which the test breaks; workers connect directly.

func TestFaultDropFailsInFlightCallsAtOnce(t *testing.T) {
	t.Parallel()
	proxy, url := brokertest.Proxy(t)
	queue := brokertest.Name(t, "rpc")
	got := make(chan struct{}, 1)
	warrentest.FakeWorker(t, queue, func(*amqp.Channel, amqp.Delivery) { got <- struct{}{} }) // holds every request
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
	if d := time.Since(dropped); d > 5*time.Second {
		t.Errorf("in-flight call failed %v after the drop (%v after it started), want at once", d, time.Since(start))
	}
	waitFor(t, "reconnection", gw.Connected)
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
	waitFor(t, "disconnection", func() bool { return !gw.Connected() })
	for range 5 {
		start := time.Now()
		err := call()
		wantCode(t, err, codes.Unavailable)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("call during the outage failed after %v, want fast", d)
		}
	}

	proxy.Refuse(false)
	back := time.Now()
	for call() != nil {
		if time.Since(back) > 10*time.Second {
			t.Fatalf("calls still fail %v after the broker came back, want within 10s", time.Since(back))
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
	warrentest.FakeWorker(t, queue, func(*amqp.Channel, amqp.Delivery) { got <- struct{}{} })
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
	waitFor(t, "reconnection", gw.Connected)
}

// TestFaultReconnectCyclesLeakNoGoroutines is not parallel: goleak compares
// the whole process's goroutines.
func TestFaultReconnectCyclesLeakNoGoroutines(t *testing.T) {
	proxy, url := brokertest.Proxy(t)
	queue := brokertest.Name(t, "rpc")
	cfg := proxiedConfig(url, queue).names(t)
	before := goleak.IgnoreCurrent()

	// The workers reach the broker through the proxy too, so every cycle
	// breaks and restores every connection warren has.
	done := make(chan string, 16)
	fibW := fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: queue, Logger: quietLog})
	taskW := tasksvc.NewWorker(tasksvc.WorkerConfig{
		Queue: cfg.Tasks, EventsExchange: cfg.Events, Logger: quietLog,
		Handler: func(_ context.Context, body []byte) error { done <- string(body); return nil },
	})
	workers := warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{URLs: []string{url}, Heartbeat: time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}}, fibW, taskW)

	gw := serveRPCGateway(t, cfg)
	waitFor(t, "connection", gw.Connected)
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
	gw.Stop()
	_ = gw.conn.Close()
	workers.Stop()
	goleak.VerifyNone(t, before)
}
