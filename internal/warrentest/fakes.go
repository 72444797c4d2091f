package warrentest

import (
	"context"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// FakeWorker declares queue as the tutorial does, consumes it on a
// connection of its own and hands every delivery to handle. It returns a
// func that stops consuming (the test's end stops it too).
func FakeWorker(t testing.TB, queue string, handle func(ch *amqp.Channel, d amqp.Delivery)) (stop func()) {
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

// Reply publishes p to d's reply_to and acknowledges d.
func Reply(t testing.TB, ch *amqp.Channel, d amqp.Delivery, p amqp.Publishing) {
	t.Helper()
	if err := ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, p); err != nil {
		t.Errorf("publish reply: %v", err)
	}
	_ = d.Ack(false)
}

// CloseConnections makes the broker close every connection named name
// (through the management API), waiting up to 10 s for one to exist.
func CloseConnections(t testing.TB, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := brokertest.CloseConnections(name)
		if err != nil {
			t.Fatalf("close connection %q: %v", name, err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection named %q to close", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ctx returns a context that ends after 30 s or with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
