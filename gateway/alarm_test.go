package gateway_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// TestFaultMemoryAlarmFailsCallsInsteadOfHanging raises a memory alarm on
// a broker node of the test's own.
func TestFaultMemoryAlarmFailsCallsInsteadOfHanging(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNode(t)
	queue := "rpc_queue"

	startFibWorker(t, queue, node.URL)
	// The work queue exists on the node, so SubmitTask's publishing is
	// routed (and so blocked by the alarm, not returned).
	names := gwConfig{}.names(t)
	warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{URLs: []string{node.URL}}},
		tasksvc.NewWorker(tasksvc.WorkerConfig{Queue: names.Tasks, EventsExchange: names.Events, Logger: quietLog}))

	names.RPCQueue = queue
	gw := startRPCGatewayAt(t, node.URL, names)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("before the alarm: %v", err)
	}

	node.Ctl(t, "set_vm_memory_high_watermark", "0")
	start := time.Now()
	var err error
	for err = call(); err == nil && time.Since(start) < 10*time.Second; err = call() {
		time.Sleep(20 * time.Millisecond) // the alarm takes a moment to reach the connections
	}
	wantCode(t, err, codes.ResourceExhausted)
	t.Logf("memory alarm: first failed call after %v", time.Since(start).Round(time.Millisecond))
	for range 3 {
		s := time.Now()
		wantCode(t, call(), codes.ResourceExhausted)
		if d := time.Since(s); d > 2*time.Second {
			t.Errorf("call under the alarm took %v, want a fast failure", d)
		}
	}

	// Publishing calls of the other services fail fast too: the gateway's
	// connection is blocked, whichever call first met the alarm.
	logs := warrenv1.NewLogServiceClient(gw.conn)
	tasks := warrenv1.NewTaskServiceClient(gw.conn)
	queues := warrenv1.NewQueueServiceClient(gw.conn)
	for name, publish := range map[string]func(context.Context) error{
		"SubmitTask": func(ctx context.Context) error {
			_, err := tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x"})
			return err
		},
		"Send": func(ctx context.Context) error {
			_, err := queues.Send(ctx, &warrenv1.SendRequest{Queue: "alarm-test", Body: "x"})
			return err
		},
		"EmitLog": func(ctx context.Context) error {
			_, err := logs.EmitLog(ctx, &warrenv1.EmitLogRequest{Body: "x"})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s := time.Now()
		err := publish(ctx)
		cancel()
		if status.Code(err) != codes.ResourceExhausted || time.Since(s) > 2*time.Second {
			t.Errorf("%s under the alarm: %v after %v, want RESOURCE_EXHAUSTED at once", name, err, time.Since(s))
		}
	}

	node.Ctl(t, "set_vm_memory_high_watermark", "0.4")
	cleared := time.Now()
	for call() != nil {
		if time.Since(cleared) > 10*time.Second {
			t.Fatal("calls still fail 10s after the alarm cleared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("calls succeed %v after the alarm cleared", time.Since(cleared).Round(time.Millisecond))
}
