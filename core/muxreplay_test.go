package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// startHistoryMux runs a Mux configured by cfg, with the history h, on a
// topic exchange of the test's own, and returns it with the exchange and a
// channel to publish on.
func startHistoryMux(t *testing.T, cfg MuxConfig, h HistoryConfig) (*Mux, string, *amqp.Channel) {
	t.Helper()
	cfg.Exchange, cfg.Kind = brokertest.Name(t, "topic"), "topic"
	h.Stream = cfg.Exchange + ".history"
	cfg.History = &h
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDeclare(cfg.Exchange, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	sup := NewSupervisor(Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(), Logger: quietLog})
	m := NewMux(sup, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sup.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "connected", sup.Connected)
	return m, cfg.Exchange, ch
}

// TestReplaySpillsAndJoinsAgain: a replay that joined the live feed and
// then fell behind (its client stalls while the live messages come) spills
// its buffer instead of ending: it leaves the feed, reads on from its own
// consumer, joins again later, and its client gets every message once, in
// order.
func TestReplaySpillsAndJoinsAgain(t *testing.T) {
	t.Parallel()
	m, exchange, ch := startHistoryMux(t, MuxConfig{MaxLength: 32, Prefetch: 8}, HistoryConfig{})

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
	// With nothing more to come, a replay that spilled joins the feed
	// again on its own, without waiting for a live message to wake it…
	waitFor(t, "the replay back in the index with nothing published", func() bool {
		pending, spilled := sub.state()
		return !sub.Replaying() || pending && !spilled
	})
	// …so that one live message is all its hand-over needs.
	publish(total, total+1)
	waitFor(t, "joined", func() bool { return !sub.Replaying() })
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

// TestReplayFromTheEndGetsTheNextMessage: a subscription that starts
// where the history ends has nothing to replay; it joins the live feed at
// once, and the next message published reaches it, whichever of its own
// consumer and the live feed has it first. Twenty subscriptions in turn,
// as that order varies.
func TestReplayFromTheEndGetsTheNextMessage(t *testing.T) {
	t.Parallel()
	m, publish := startPublishing(t)
	publish("0")
	for i := 1; i <= 20; i++ {
		// From the offset the next message gets.
		_, first := firstFrom(t, m, StartOffset(int64(i)))
		publish(strconv.Itoa(i))
		if body := first(); body != strconv.Itoa(i) {
			t.Fatalf("subscription %d got %q, want %d", i, body, i)
		}
	}
}

// TestReplaySkipsALateDeliveryBeforeItsStart: the Mux's consumer may
// offer a subscription that just joined the live feed a delivery from
// before the subscription's start (it lags behind the subscription's own
// consumer). The client never gets it: what comes before the start counts
// as handed over. The late delivery is offered by hand here; on a loaded
// machine, the Mux's consumer did it.
func TestReplaySkipsALateDeliveryBeforeItsStart(t *testing.T) {
	t.Parallel()
	m, publish := startPublishing(t)
	for i := range 5 {
		publish(strconv.Itoa(i))
	}
	sub, first := firstFrom(t, m, StartOffset(5))
	sub.offer(&amqp.Delivery{RoutingKey: "k", Body: []byte("4, late"), Headers: amqp.Table{"x-stream-offset": int64(4)}})
	publish("5")
	if body := first(); body != "5" {
		t.Fatalf("the subscription from offset 5 got %q first, want 5", body)
	}
}

// startPublishing runs a Mux with a history (startHistoryMux) and returns
// it with a function that publishes a body to its exchange with key "k".
func startPublishing(t *testing.T) (*Mux, func(body string)) {
	m, exchange, ch := startHistoryMux(t, MuxConfig{}, HistoryConfig{})
	return m, func(body string) {
		t.Helper()
		if err := ch.PublishWithContext(context.Background(), exchange, "k", false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
}

// firstFrom subscribes to every key from start, and returns once the
// subscription joined the live feed (pending in the index), with a
// function that waits for the first message it streams (it streams no
// other) and returns its body.
func firstFrom(t *testing.T, m *Mux, start StreamStart) (*MuxSubscription, func() string) {
	t.Helper()
	sub, err := m.SubscribeFrom(context.Background(), []string{"#"}, start)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	streamed := make(chan error, 1)
	go func() {
		streamed <- sub.Stream(func(d *amqp.Delivery) error {
			got <- string(d.Body)
			return errors.New("enough")
		})
	}()
	waitFor(t, "the subscription in the index", func() bool {
		pending, _ := sub.state()
		return pending
	})
	return sub, func() string {
		t.Helper()
		select {
		case body := <-got:
			<-streamed
			return body
		case <-time.After(10 * time.Second):
			sub.Close()
			<-streamed
			t.Fatalf("nothing came (replaying: %v)", sub.Replaying())
			return ""
		}
	}
}

// TestReplaysWaitForATurn: with Replays 2, a third subscription that
// starts in the history waits for a token; eight that start at once do not
// fail: six wait until one of the first two joined the live feed, and each
// gets every message once, in order.
func TestReplaysWaitForATurn(t *testing.T) {
	t.Parallel()
	m, exchange, ch := startHistoryMux(t, MuxConfig{}, HistoryConfig{Replays: 2})

	var next int // the next number to publish
	var pmu sync.Mutex
	publish := func(n int) {
		pmu.Lock()
		defer pmu.Unlock()
		for range n {
			if err := ch.PublishWithContext(context.Background(), exchange, "k", false, false, amqp.Publishing{Body: []byte(strconv.Itoa(next))}); err != nil {
				t.Error(err)
			}
			next++
		}
	}
	publish(50)
	// Two replays take both tokens (nothing live comes, so they cannot
	// join): a third waits, until its context ends or one of them does.
	var first []*MuxSubscription
	for range 2 {
		sub, err := m.SubscribeFrom(context.Background(), []string{"#"}, StartFirst())
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, sub)
	}
	short, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := m.SubscribeFrom(short, []string{"#"}, StartFirst())
	scancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third replay with both tokens taken: %v, want it to wait until its deadline", err)
	}
	third := make(chan error, 1)
	go func() {
		sub, err := m.SubscribeFrom(context.Background(), []string{"#"}, StartFirst())
		if err == nil {
			sub.Close()
		}
		third <- err
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-third:
		t.Fatalf("a third replay did not wait: %v", err)
	default:
	}
	first[0].Close()
	if err := <-third; err != nil {
		t.Fatalf("the third replay, once a token was free: %v", err)
	}
	first[1].Close()

	// Live messages keep coming, so that caught-up replays can join.
	stop := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				publish(1)
			}
		}
	})
	const subs, want = 8, 80
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	for i := range subs {
		wg.Go(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer scancel()
			sub, err := m.SubscribeFrom(sctx, []string{"#"}, StartFirst())
			if err != nil {
				errs <- fmt.Errorf("subscription %d: %w", i, err)
				return
			}
			got := 0
			err = sub.Stream(func(d *amqp.Delivery) error {
				if n, _ := strconv.Atoi(string(d.Body)); n != got {
					return fmt.Errorf("subscription %d: message %d is %d", i, got, n)
				}
				if got++; got == want {
					return errEnough
				}
				return nil
			})
			if err != errEnough {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(stop)
	pwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(m.replays); n != 0 {
		t.Errorf("%d replay tokens still taken after every subscription ended", n)
	}
}

var errEnough = errors.New("enough")
