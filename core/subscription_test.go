package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// A subscription whose client is stuck in send still deletes its queue
// and closes its channel when it ends; Stream then returns the cause.
func TestSubscriptionCleansUpWhileTheSenderIsBlocked(t *testing.T) {
	t.Parallel()
	exchange, ch := fanout(t)
	subs := startSubscriber(t)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sub, err := subs.Subscribe(ctx, core.SubscriptionConfig{Bindings: []core.Binding{{Exchange: exchange}}, Prefetch: 4})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	queue := sub.Queue()
	for range 3 {
		if err := ch.PublishWithContext(context.Background(), exchange, "", false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	blocked, release := make(chan struct{}), make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		ended <- sub.Stream(func(*amqp.Delivery) error {
			close(blocked)
			<-release // a client that stopped reading
			return nil
		})
	}()
	<-blocked
	stop := errors.New("the test ends the subscription")
	cancel(stop)
	warrentest.Eventually(t, 5*time.Second, "the subscription's queue deleted", func() bool {
		c := brokertest.Channel(t)
		_, err := c.QueueDeclarePassive(queue, false, true, true, false, nil)
		return err != nil
	})
	close(release)
	if err := <-ended; !errors.Is(err, stop) {
		t.Errorf("Stream = %v, want the cause %v", err, stop)
	}
}

// Messages reach the client in order, each acknowledged after send, and a
// queue that overflows ends the subscription with ErrOverflow.
func TestSubscriptionOverflowEndsIt(t *testing.T) {
	t.Parallel()
	exchange, ch := fanout(t)
	subs := startSubscriber(t)
	sub, err := subs.Subscribe(context.Background(), core.SubscriptionConfig{
		Bindings: []core.Binding{{Exchange: exchange}}, Prefetch: 2,
		MaxLength: 10, OverflowCheck: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	for range 50 {
		if err := ch.PublishWithContext(context.Background(), exchange, "", false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	err = sub.Stream(func(*amqp.Delivery) error {
		time.Sleep(time.Second) // far slower than the emitter
		return nil
	})
	if !errors.Is(err, core.ErrOverflow) {
		t.Fatalf("Stream = %v, want ErrOverflow", err)
	}
	t.Logf("overflow detected after %v", time.Since(start).Round(time.Millisecond))
}

// A subscription that fails after declaring its queue (here its Setup
// fails; a binding to a missing exchange does the same) leaves no queue
// behind, though its connection lives on.
func TestSubscriptionThatFailsLeavesNoQueue(t *testing.T) {
	t.Parallel()
	subs := startSubscriber(t)
	var queue string
	failed := errors.New("set-up failed on purpose")
	_, err := subs.Subscribe(context.Background(), core.SubscriptionConfig{
		Setup: func(_ *amqp.Channel, q string) error { queue = q; return failed },
	})
	if !errors.Is(err, failed) || queue == "" {
		t.Fatalf("Subscribe = %v (queue %q), want the Setup's error after the queue was declared", err, queue)
	}
	ch := brokertest.Channel(t)
	// Another connection's exclusive queue answers 405 RESOURCE_LOCKED; a
	// deleted one 404.
	var aerr *amqp.Error
	if _, err := ch.QueueDeclarePassive(queue, false, true, true, false, nil); !errors.As(err, &aerr) || aerr.Code != amqp.NotFound {
		t.Errorf("passive declare of %q after the failed subscription: %v, want 404 (deleted)", queue, err)
	}
	_, err = subs.Subscribe(context.Background(), core.SubscriptionConfig{
		Bindings: []core.Binding{{Exchange: brokertest.Name(t, "missing"), Key: "k"}},
	})
	warrentest.WantCode(t, core.Status(err), codes.NotFound)
}

// startSubscriber runs a Subscriber on the test broker until the test ends.
func startSubscriber(t *testing.T) *core.Subscriber {
	t.Helper()
	sup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(), Logger: warrentest.QuietLog})
	subs := core.NewSubscriber(sup)
	run(t, sup)
	return subs
}

// fanout declares an auto-delete fanout exchange of the test's own and
// returns it with a channel to publish on.
func fanout(t *testing.T) (string, *amqp.Channel) {
	t.Helper()
	exchange := brokertest.Name(t, "fanout")
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	return exchange, ch
}
