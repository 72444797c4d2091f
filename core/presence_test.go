package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestPresenceGrace: a count of no consumer right after a queue had one
// does not refuse a call (a quorum queue reports 0 consumers and 0
// messages while it has no leader, with its workers all there); when the
// workers are truly gone, the call's request waits in the queue, ready,
// and the call fails with ErrNoConsumer at the next presence check, long
// before its deadline.
func TestPresenceGrace(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	ch := declare(t, queue)
	sup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(), Logger: warrentest.QuietLog})
	client := core.NewClient(sup, core.ClientConfig{PresenceInterval: 100 * time.Millisecond})
	client.Watch(queue)
	run(t, sup)

	// A worker: answers one request, then goes.
	wch := brokertest.Channel(t)
	requests, err := wch.Consume(queue, "worker", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		d := <-requests
		_ = wch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, Body: []byte("ok")})
		_ = d.Ack(false)
		_ = wch.Cancel("worker", false)
	}()
	warrentest.Eventually(t, 5*time.Second, "the client sees the worker", func() bool { return client.Ready(queue) == nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d, err := client.Call(ctx, queue, amqp.Publishing{Body: []byte("1")}); err != nil || string(d.Body) != "ok" {
		t.Fatalf("first call: %q, %v", d.Body, err)
	}
	brokertest.WaitConsumers(t, queue, 0)

	start := time.Now()
	_, err = client.Call(ctx, queue, amqp.Publishing{Body: []byte("2")})
	if !errors.Is(err, core.ErrNoConsumer) {
		t.Fatalf("call after the worker went: %v, want ErrNoConsumer", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the call failed after %v, want at the next presence checks", took)
	}
	// The request was published (the grace let it through), and waits.
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 1 {
		t.Errorf("%d requests in the queue, want the second one", q.Messages)
	}
}
