package core

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// TestReplaySpillsAndJoinsAgain: a replay that joined the live feed and
// then fell behind (its client stalls while the live messages come) spills
// its buffer instead of ending: it leaves the feed, reads on from its own
// consumer, joins again later, and its client gets every message once, in
// order.
func TestReplaySpillsAndJoinsAgain(t *testing.T) {
	t.Parallel()
	exchange := brokertest.Name(t, "topic")
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	sup := NewSupervisor(Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(), Logger: quietLog})
	m := NewMux(sup, MuxConfig{Exchange: exchange, Kind: "topic", MaxLength: 32, Prefetch: 8,
		History: &HistoryConfig{Stream: exchange + ".history"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sup.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "connected", sup.Connected)

	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := ch.PublishWithContext(context.Background(), exchange, "k", false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
				t.Error(err)
				return
			}
		}
	}
	publish(0, 100)
	sub, err := m.SubscribeFrom(context.Background(), []string{"#"}, StartFirst())
	if err != nil {
		t.Fatal(err)
	}
	const total = 1100
	var (
		mu  sync.Mutex
		got []int
	)
	stalled := make(chan struct{})
	streamed := make(chan error, 1)
	go func() {
		streamed <- sub.Stream(func(d *amqp.Delivery) error {
			n, _ := strconv.Atoi(string(d.Body))
			mu.Lock()
			got = append(got, n)
			count := len(got)
			mu.Unlock()
			if count == 100 {
				// The history is read: wait until the subscription joined
				// (pending in the index), then stall while 1,000 live
				// messages come, more than its buffer holds.
				deadline := time.Now().Add(5 * time.Second)
				for {
					if pending, _ := sub.state(); pending || time.Now().After(deadline) {
						break
					}
					time.Sleep(time.Millisecond)
				}
				close(stalled)
				time.Sleep(500 * time.Millisecond)
			}
			return nil
		})
	}()
	select {
	case <-stalled:
	case err := <-streamed:
		t.Fatalf("Stream ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the history was not replayed")
	}
	publish(100, total)
	waitFor(t, "every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= total
	})
	// A live message to switch on, should the last join still wait for one.
	next := total
	waitFor(t, "joined", func() bool {
		publish(next, next+1)
		next++
		return !sub.Replaying()
	})
	sub.Close()
	<-streamed
	mu.Lock()
	defer mu.Unlock()
	for i, n := range got {
		if n != i {
			t.Fatalf("message %d is %d (got %v...)", i, n, got[max(0, i-5):min(len(got), i+5)])
		}
	}
	if n := m.spills.Load(); n == 0 {
		t.Fatal("the replay never spilled: the test did not make it fall behind")
	} else {
		t.Logf("%d messages in order; the replay spilled %d times and joined", len(got), n)
	}
}
