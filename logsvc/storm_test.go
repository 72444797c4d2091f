package logsvc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
)

// TestSubscribeCancelStorm: subscriptions come and go at up to 1,000 per
// second for a few seconds, each with keys drawn from a small set, so that
// binds and unbinds of one key race. Meanwhile a steady subscriber, whose
// key the storm's subscriptions share, receives every message emitted to
// it, in order: its key is never unbound while it needs it. Afterwards the
// exchange's bindings are back to where they started (the steady one's,
// then none), and the package's goleak check finds no goroutine left.
func TestSubscribeCancelStorm(t *testing.T) {
	t.Parallel()
	const (
		rate     = 1000 // subscriptions per second, at most
		duration = 3 * time.Second
		workers  = 32
	)
	h := start(t, Config{})
	keySet := []string{"k0", "k1", "k2", "k3", "k4.*", "#", "k5.#"}
	if got := len(bindingKeys(t, h.cfg.TopicExchange)); got != 0 {
		t.Fatalf("exchange has %d bindings before the storm, want 0", got)
	}
	steady := h.subscribe(t, topic, "k0")

	var emitted atomic.Int64
	stop := make(chan struct{})
	var emitter sync.WaitGroup
	emitter.Add(1)
	go func() { // one message to k0 every 5ms
		defer emitter.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n := emitted.Load()
			if _, err := h.client.EmitLog(context.Background(), &warrenv1.EmitLogRequest{Exchange: topic, RoutingKey: "k0", Body: fmt.Sprint(n)}); err != nil {
				t.Errorf("EmitLog %d: %v", n, err)
				return
			}
			emitted.Add(1)
		}
	}()

	var done, failed atomic.Int64
	tokens := make(chan struct{}, workers)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range tokens {
				keys := []string{keySet[r.IntN(len(keySet))], keySet[r.IntN(len(keySet))]}
				s, err := h.trySubscribe(topic, keys...)
				if err != nil {
					failed.Add(1)
					t.Errorf("storm subscribe %q: %v", keys, err)
					continue
				}
				s.cancel()
				done.Add(1)
			}
		}()
	}
	pace := time.NewTicker(time.Second / rate)
	for time.Since(t0) < duration {
		<-pace.C
		select {
		case tokens <- struct{}{}:
		default: // the workers are behind: the rate is what the machine allows
		}
	}
	pace.Stop()
	close(tokens)
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	emitter.Wait()
	t.Logf("storm: %d subscribe/cancel cycles in %v (%.0f/s), %d failed", done.Load(), elapsed.Round(time.Millisecond), float64(done.Load())/elapsed.Seconds(), failed.Load())

	// The steady subscriber got every message, in order.
	n := int(emitted.Load())
	for i, m := range steady.recvN(t, n, 20*time.Second) {
		if m.GetBody() != fmt.Sprint(i) {
			t.Fatalf("steady subscriber message %d: got %q, want %q (in order, none lost)", i, m.GetBody(), fmt.Sprint(i))
		}
	}
	waitBindings(t, h.cfg.TopicExchange, steady.queue, []string{"k0"})
	steady.cancel()
	waitBindings(t, h.cfg.TopicExchange, steady.queue, nil)
	t.Logf("after the storm: %d messages to the steady subscriber, all in order; bindings back to 0", n)
}

// bindingKeys are the keys of the exchange's bindings on the broker.
func bindingKeys(t testing.TB, exchange string) []string {
	t.Helper()
	var keys []string
	for _, b := range brokertest.Bindings(t, exchange) {
		keys = append(keys, b.Key)
	}
	return keys
}
