package core_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestConsumerDeclaresAndHandsBack: a Consumer declares what its Declare
// hook asks for before it consumes; when its drain times out it ends the
// running handler's context and hands back, requeued, what it received
// but did not start (HandBack), so nothing it held is lost.
func TestConsumerDeclaresAndHandsBack(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "work")
	extra := queue + ".extra"
	var started, interrupted atomic.Int32
	sup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(), Logger: warrentest.QuietLog})
	cons := core.NewConsumer(sup, core.ConsumerConfig{
		Queue:       core.QueueSpec{Name: queue, Durable: true},
		Prefetch:    3,
		Concurrency: 1,
		HandBack:    true,
		Declare: func(conn *core.Conn) error {
			_, err := core.DeclareQueue(conn.Connection, core.QueueSpec{Name: extra, Durable: true}, warrentest.QuietLog)
			return err
		},
	}, func(ctx context.Context, _ *amqp.Channel, d *amqp.Delivery) {
		started.Add(1)
		<-ctx.Done() // works until interrupted
		interrupted.Add(1)
		_ = d.Nack(false, true)
	})
	run(t, sup)

	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclarePassive(extra, true, false, false, false, nil); err != nil {
		t.Fatalf("the Declare hook's queue: %v", err)
	}
	brokertest.WaitConsumers(t, queue, 1)
	for range 3 {
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	// The one handler goroutine runs the first; the broker pushed the
	// other two (prefetch 3): wait until they are all unacknowledged.
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := brokertest.Channel(t).QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 0 && started.Load() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready %d, started %d: want 0 ready and 1 started", q.Messages, started.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := cons.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if started.Load() != 1 || interrupted.Load() != 1 {
		t.Fatalf("started %d, interrupted %d: want the running one interrupted and the others not started", started.Load(), interrupted.Load())
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		q, err := brokertest.Channel(t).QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ready after the drain, want all 3 handed back", q.Messages)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumerConsumesAgain: a Consumer whose consumer ends while its
// connection lives consumes again on a new channel, without a reconnect:
// after the broker cancelled it because someone deleted its queue (it
// declares the queue again), and after a channel error its DeliveryFunc
// caused (acknowledging a delivery twice). Before, it stayed connected
// and consumed nothing until the connection failed.
func TestConsumerConsumesAgain(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "work")
	var sessions warrentest.Sessions
	sup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(), Logger: warrentest.QuietLog}, &sessions)
	handled := make(chan string, 16)
	cons := core.NewConsumer(sup, core.ConsumerConfig{Queue: core.QueueSpec{Name: queue}, Logger: warrentest.QuietLog},
		func(_ context.Context, _ *amqp.Channel, d *amqp.Delivery) {
			_ = d.Ack(false)
			if string(d.Body) == "twice" {
				_ = d.Ack(false) // PRECONDITION_FAILED: unknown delivery tag; the channel closes
			}
			handled <- string(d.Body)
		})
	run(t, sup)
	ch := brokertest.Channel(t)
	send := func(body string) {
		t.Helper()
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-handled:
			if got != body {
				t.Fatalf("handled %q, want %q", got, body)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%q was not handled", body)
		}
	}
	send("first")

	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitConsumers(t, queue, 1) // declared again, and consumed
	send("after the queue was deleted")

	send("twice")
	brokertest.WaitConsumers(t, queue, 1)
	send("after a channel error")

	if n := sessions.N(); n != 1 {
		t.Errorf("the Supervisor made %d connections, want 1: the consumer comes back on its own", n)
	}
	if err := cons.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Shutdown waits for the broker's cancel-ok: no consumer left, at once.
	if q, err := brokertest.Channel(t).QueueDeclarePassive(queue, false, false, false, false, nil); err != nil || q.Consumers != 0 {
		t.Errorf("after Shutdown: %d consumers (%v), want 0", q.Consumers, err)
	}
}
