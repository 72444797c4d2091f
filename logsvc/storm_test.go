package logsvc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestSubscribeCancelStorm: subscriptions come and go at up to 1,000 per
// second for a few seconds, each with keys drawn from a small set, so that
// binds and unbinds of one key race. Meanwhile a steady subscriber, whose
// key the storm's subscriptions share, receives every message emitted to
// it, in order: its key is never unbound while it needs it. Afterwards the
// exchange's bindings are back to where they started (the steady one's,
// then none), every storm stream ended with its client's CANCELED, the
// gateway saw every subscription end by its client and holds none
// (counted by a core.Metrics of the test's), and the package's goleak
// check finds no goroutine left. The rate reached is logged: on two cores
// it is the asked one without the race detector, and lower with it.
func TestSubscribeCancelStorm(t *testing.T) {
	t.Parallel()
	const (
		rate     = 1000 // subscriptions per second, at most
		duration = 3 * time.Second
		workers  = 32
	)
	subs := &subscriptionCount{}
	cfg := testConfig(t, Config{})
	h := &harness{svc: New(cfg), connName: brokertest.Name(t, "conn")}
	h.cfg = h.svc.cfg
	gcfg := gatewayConfig(h.connName, cfg.Logger)
	gcfg.AMQP.Metrics = subs
	h.gw = warrentest.StartGateway(t, gcfg, h.svc)
	h.client = warrenv1.NewLogServiceClient(h.gw.Conn)
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
					t.Errorf("storm subscribe %q: got %v (code %v), want a subscription", keys, err, status.Code(err))
					continue
				}
				s.cancel()
				// The client's cancel is what the stream ends with (after
				// any message to k0 or # it received meanwhile).
				for {
					if _, err := s.stream.Recv(); err != nil {
						if status.Code(err) != codes.Canceled {
							t.Errorf("storm stream after its cancel: got %v, want CANCELED", err)
						}
						break
					}
				}
				done.Add(1)
			}
		}()
	}
	pace(tokens, rate, duration)
	close(tokens)
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	emitter.Wait()
	t.Logf("storm: %d subscribe/cancel cycles in %v (%.0f/s of the %d/s asked), %d failed", done.Load(), elapsed.Round(time.Millisecond), float64(done.Load())/elapsed.Seconds(), rate, failed.Load())

	// The steady subscriber got every message, in order.
	n := int(emitted.Load())
	for i, m := range steady.recvN(t, n, 20*time.Second) {
		if m.GetBody() != fmt.Sprint(i) {
			t.Fatalf("steady subscriber message %d: got %q, want %q (in order, none lost)", i, m.GetBody(), fmt.Sprint(i))
		}
	}
	waitBindings(t, h.cfg.TopicExchange, steady.queue, []string{"k0"})
	subs.wait(t, 1)
	steady.cancel()
	waitBindings(t, h.cfg.TopicExchange, steady.queue, nil)
	subs.wait(t, 0)
	if got, want := subs.closed(core.CloseEnded), done.Load()+1; got != want {
		t.Errorf("subscriptions the gateway saw end by their client: got %d, want %d (%v)", got, want, subs)
	}
	t.Logf("after the storm: %d messages to the steady subscriber, all in order; bindings back to 0; the gateway's subscriptions back to 0 (%v)", n, subs)
}

// subscriptionCount is a core.Metrics that counts the subscriptions the
// gateway opened and closed, by reason.
type subscriptionCount struct {
	core.NopMetrics
	mu     sync.Mutex
	open   int
	reason map[core.CloseReason]int64
}

func (c *subscriptionCount) SubscriptionOpened(string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open++
}

func (c *subscriptionCount) SubscriptionClosed(_, _ string, r core.CloseReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open--
	if c.reason == nil {
		c.reason = map[core.CloseReason]int64{}
	}
	c.reason[r]++
}

func (c *subscriptionCount) closed(r core.CloseReason) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason[r]
}

func (c *subscriptionCount) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d open, closed: %v", c.open, c.reason)
}

// wait waits until the gateway holds want subscriptions.
func (c *subscriptionCount) wait(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		open := c.open
		c.mu.Unlock()
		if open == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway holds %d subscriptions, want %d (%v)", open, want, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pace hands tokens to workers at rate per second for d: the n-th token
// is due n/rate after the start, and tokens that fell behind (the
// workers were all busy, or the pacer was not scheduled in time) go out
// at once when it can, so a ticker's dropped ticks do not lower the rate;
// when the workers cannot keep up, the rate is what they manage.
func pace(tokens chan<- struct{}, rate int, d time.Duration) {
	t0 := time.Now()
	end := time.NewTimer(d)
	defer end.Stop()
	for n := 0; ; n++ {
		due := t0.Add(time.Duration(n) * time.Second / time.Duration(rate))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		if time.Since(t0) >= d {
			return
		}
		select {
		case tokens <- struct{}{}:
		case <-end.C:
			return
		}
	}
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
