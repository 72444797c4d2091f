package core_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// startPublisher runs a Publisher on the test broker (or url).
func startPublisher(t *testing.T, cfg core.PublisherConfig, amqpCfg core.Config) *core.Publisher {
	t.Helper()
	if amqpCfg.Name == "" {
		amqpCfg.Name = "warren-test-" + t.Name()
	}
	if len(amqpCfg.URLs) == 0 {
		amqpCfg.URLs = []string{brokertest.Require(t)}
	}
	amqpCfg.Logger = warrentest.QuietLog
	sup := core.NewSupervisor(amqpCfg)
	pub := core.NewPublisher(sup, cfg)
	run(t, sup)
	return pub
}

// run runs sup until the test ends and waits until it is connected.
func run(t *testing.T, sup *core.Supervisor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sup.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	warrentest.Eventually(t, 15*time.Second, "connected", sup.Connected)
}

func declare(t *testing.T, queue string) *amqp.Channel {
	t.Helper()
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatalf("declare %q: %v", queue, err)
	}
	return ch
}

func TestPublisherNotConnected(t *testing.T) {
	t.Parallel()
	pub := core.NewPublisher(core.NewSupervisor(core.Config{}), core.PublisherConfig{})
	err := pub.Publish(context.Background(), &core.Message{RoutingKey: "q"})
	if !errors.Is(err, core.ErrNotConnected) {
		t.Fatalf("Publish before connecting: %v, want ErrNotConnected", err)
	}
}

// Concurrent mandatory publishings, half to a queue that exists and half
// to one that does not: each learns its own fate, exactly.
func TestPublisherMatchesEachReturnToItsPublishing(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "q")
	ch := declare(t, queue)
	missing := brokertest.Name(t, "missing")
	pub := startPublisher(t, core.PublisherConfig{Channels: 2}, core.Config{})
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			to := queue
			if i%2 == 1 {
				to = missing
			}
			errs[i] = pub.Publish(context.Background(), &core.Message{
				RoutingKey: to, Mandatory: true,
				Publishing: amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte("x")},
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		var ret *core.ReturnError
		switch {
		case i%2 == 0 && err != nil:
			t.Errorf("publishing %d to an existing queue: %v, want nil", i, err)
		case i%2 == 1 && !errors.As(err, &ret):
			t.Errorf("publishing %d to a missing queue: %v, want a *ReturnError", i, err)
		case i%2 == 1 && ret.RoutingKey != missing:
			t.Errorf("publishing %d returned for %q, want %q", i, ret.RoutingKey, missing)
		}
	}
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil || q.Messages != n/2 {
		t.Errorf("queue holds %d messages (%v), want %d", q.Messages, err, n/2)
	}
}

// A 404 kills a channel; the pool opens a new one and later publishings
// go through.
func TestPublisherReopensAChannelAfterAnException(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "q")
	declare(t, queue)
	pub := startPublisher(t, core.PublisherConfig{Channels: 1}, core.Config{})
	err := pub.Publish(context.Background(), &core.Message{Exchange: brokertest.Name(t, "no-such-exchange"), RoutingKey: "k"})
	if err == nil {
		t.Fatal("publishing to a missing exchange succeeded")
	}
	warrentest.WantCode(t, core.Status(err), codes.NotFound)
	for i := range 3 {
		if err := pub.Publish(context.Background(), &core.Message{RoutingKey: queue, Mandatory: true}); err != nil {
			t.Fatalf("publishing %d after the exception: %v", i, err)
		}
	}
}

// No wait is unbounded: with the broker silent (a black hole keeps the
// TCP connection and drops every byte), a publishing whose context has no
// deadline fails after the Publisher's Timeout, long before heartbeats
// notice.
func TestPublisherWaitIsBoundedWithoutADeadline(t *testing.T) {
	t.Parallel()
	proxy, url := brokertest.Proxy(t)
	queue := brokertest.Name(t, "q")
	declare(t, queue)
	pub := startPublisher(t, core.PublisherConfig{Timeout: 300 * time.Millisecond}, core.Config{URLs: []string{url}, Heartbeat: time.Minute})
	if err := pub.Publish(context.Background(), &core.Message{RoutingKey: queue}); err != nil {
		t.Fatalf("before the black hole: %v", err)
	}
	proxy.Blackhole(true)
	defer proxy.Blackhole(false)
	start := time.Now()
	err := pub.Publish(context.Background(), &core.Message{RoutingKey: queue})
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish into a black hole: %v, want DeadlineExceeded", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Publish gave up after %v, want about the 300ms timeout", elapsed)
	}
	t.Logf("gave up after %v", elapsed.Round(time.Millisecond))
}
