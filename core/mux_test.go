package core_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// startMux runs a Mux on a topic exchange of the test's own and returns
// it with the exchange and a channel to publish on.
func startMux(t *testing.T, cfg core.MuxConfig) (*core.Mux, string, *amqp.Channel) {
	t.Helper()
	cfg.Exchange, cfg.Kind = brokertest.Name(t, "topic"), "topic"
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDeclare(cfg.Exchange, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	sup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(), Logger: warrentest.QuietLog})
	m := core.NewMux(sup, cfg)
	run(t, sup)
	return m, cfg.Exchange, ch
}

func subscribeMux(t *testing.T, m *core.Mux, keys ...string) *core.MuxSubscription {
	t.Helper()
	var sub *core.MuxSubscription
	warrentest.Eventually(t, 10*time.Second, "Mux.Subscribe", func() bool {
		var err error
		sub, err = m.Subscribe(context.Background(), keys)
		return err == nil
	})
	t.Cleanup(sub.Close)
	return sub
}

// One queue carries every subscription; a delivery reaches each
// subscription it matches once (however many of its keys match), in the
// broker's order; a subscription whose client does not read ends with
// ErrOverflow at MaxLength while the others get everything.
func TestMuxFansOutOnceInOrderAndCutsOnlyTheSlow(t *testing.T) {
	t.Parallel()
	const n, chunk = 50, 10
	m, exchange, ch := startMux(t, core.MuxConfig{MaxLength: 20})
	both := subscribeMux(t, m, "a.*", "#") // both keys match a.b
	other := subscribeMux(t, m, "x.y")     // matches nothing published
	slow := subscribeMux(t, m, "a.b")      // never read until the end
	if both.Queue() != other.Queue() || both.Queue() != slow.Queue() {
		t.Fatalf("queues %q, %q, %q: want one", both.Queue(), other.Queue(), slow.Queue())
	}
	// The fast one reads each chunk before the next is published, so only
	// the slow one's backlog grows past MaxLength.
	received := make(chan string, n)
	streamed := make(chan error, 1)
	go func() {
		streamed <- both.Stream(func(d *amqp.Delivery) error {
			received <- string(d.Body)
			return nil
		})
	}()
	got := 0
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for c := 0; c < n; c += chunk {
		for i := c; i < c+chunk; i++ {
			if err := ch.PublishWithContext(context.Background(), exchange, "a.b", false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
		for ; got < c+chunk; got++ {
			select {
			case body := <-received:
				if body != strconv.Itoa(got) {
					t.Fatalf("fast subscription message %d: got %q (in order, once each)", got, body)
				}
			case err := <-streamed:
				t.Fatalf("fast subscription ended after %d messages: %v", got, err)
			case <-timeout.C:
				t.Fatalf("fast subscription: %d of %d messages after 20s", got, n)
			}
		}
	}
	both.Close()
	if err := <-streamed; !errors.Is(err, context.Canceled) {
		t.Errorf("fast subscription's Stream after Close = %v, want context.Canceled", err)
	}
	select {
	case body := <-received:
		t.Errorf("fast subscription got %q more than the %d published", body, n)
	default:
	}
	err := slow.Stream(func(*amqp.Delivery) error { return nil })
	if !errors.Is(err, core.ErrOverflow) {
		t.Errorf("slow subscription's Stream = %v, want ErrOverflow", err)
	}
	var extra error = errors.New("no delivery")
	go func() { time.Sleep(300 * time.Millisecond); other.Close() }()
	_ = other.Stream(func(d *amqp.Delivery) error { extra = fmt.Errorf("got %q", d.RoutingKey); return nil })
	if extra.Error() != "no delivery" {
		t.Errorf("subscription to x.y: %v, want no delivery", extra)
	}
}

// Subscriptions that come and go concurrently on the same keys (without
// linger) never leave a key unbound that a live subscription holds, and
// leave no binding once they are all gone.
func TestMuxBindingsUnderConcurrentSubscribeAndClose(t *testing.T) {
	t.Parallel()
	m, exchange, ch := startMux(t, core.MuxConfig{Linger: -1})
	steady := subscribeMux(t, m, "k")
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				s, err := m.Subscribe(context.Background(), []string{"k", fmt.Sprint("k", (w+i)%4)})
				if err != nil {
					t.Errorf("Subscribe: %v", err)
					return
				}
				s.Close()
			}
		}()
	}
	wg.Wait()
	if err := ch.PublishWithContext(context.Background(), exchange, "k", false, false, amqp.Publishing{Body: []byte("still bound")}); err != nil {
		t.Fatal(err)
	}
	errDone := errors.New("done")
	var body string
	if err := steady.Stream(func(d *amqp.Delivery) error { body = string(d.Body); return errDone }); !errors.Is(err, errDone) || body != "still bound" {
		t.Fatalf("steady subscription: %v, %q; want the message", err, body)
	}
	var keys []string
	warrentest.Eventually(t, 5*time.Second, "no binding left", func() bool {
		keys = keys[:0]
		for _, b := range brokertest.Bindings(t, exchange) {
			keys = append(keys, b.Key)
		}
		return len(keys) == 0
	})
}
