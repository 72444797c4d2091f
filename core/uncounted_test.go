package core_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestCallsOutliveAnUncountedQueue: when a quorum queue's process does
// not answer within 250 ms (a loaded broker), RabbitMQ answers a passive
// declare with zero messages and zero consumers rather than failing it.
// The Client must not take that for "no worker": a call waiting for its
// reply, and calls made meanwhile, are answered once the queue answers
// again, instead of failing UNAVAILABLE. The queue's process is suspended
// for two seconds, on a node of the test's own.
func TestCallsOutliveAnUncountedQueue(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNode(t)
	queue := brokertest.Name(t, "rpc")
	cfg := func(name string) core.Config {
		return core.Config{URLs: []string{node.URL}, Name: name + t.Name(), Logger: warrentest.QuietLog}
	}
	ssup := core.NewSupervisor(cfg("warren-test-server-"))
	core.NewServer(ssup, core.ServerConfig{Queue: core.QueueSpec{Name: queue, Type: core.QueueQuorum}, Logger: warrentest.QuietLog},
		core.HandlerFunc(func(_ context.Context, d *amqp.Delivery) (amqp.Publishing, error) {
			return amqp.Publishing{Body: append([]byte("echo "), d.Body...)}, nil
		}))
	run(t, ssup)
	csup := core.NewSupervisor(cfg("warren-test-client-"))
	client := core.NewClient(csup, core.ClientConfig{PresenceInterval: 50 * time.Millisecond})
	in := core.NewInspector(csup, core.InspectorConfig{})
	run(t, csup)
	call := func(body string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		d, err := client.Call(ctx, queue, amqp.Publishing{Body: []byte(body)})
		if err == nil && string(d.Body) != "echo "+body {
			err = fmt.Errorf("reply %q", d.Body)
		}
		return err
	}
	if err := call("before"); err != nil {
		t.Fatal(err)
	}

	// The queue's process is the Ra server its pid names.
	ra := fmt.Sprintf(`{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<%q>>)), {Ra, _} = amqqueue:get_pid(Q), Ra`, queue)
	node.Ctl(t, "eval", fmt.Sprintf("sys:suspend(begin %s end).", ra))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			node.Ctl(t, "eval", fmt.Sprintf("sys:resume(begin %s end).", ra))
		}
	}
	defer resume()
	// What the Client's poller reads meanwhile.
	_, err := in.Queue(context.Background(), queue)
	if !errors.Is(err, core.ErrUncounted) {
		t.Fatalf("a passive declare of the suspended queue: %v, want ErrUncounted", err)
	}
	t.Logf("suspended: %v", err)

	errs := make(chan error, 2)
	go func() { errs <- call("while suspended") }()
	time.Sleep(time.Second)
	go func() { errs <- call("a second later") }()
	time.Sleep(time.Second)
	resume()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("a call while the queue did not count: %v, want it answered once it does", err)
		}
	}
	if err := call("after"); err != nil {
		t.Fatal(err)
	}
}
