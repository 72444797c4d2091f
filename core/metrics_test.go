package core_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
)

// events is a core.Metrics that counts each event under its name and
// labels ("Published ,q"); the deltas of gauges (CallPending, InFlight)
// are summed, and durations must be positive.
type events struct {
	t  *testing.T
	mu sync.Mutex
	n  map[string]int
}

func newEvents(t *testing.T) *events { return &events{t: t, n: map[string]int{}} }

func (e *events) add(delta int, name string, labels ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[name+" "+strings.Join(labels, ",")] += delta
}

func (e *events) dur(name string, d time.Duration) {
	if d <= 0 {
		e.t.Errorf("%s with duration %v, want a positive one", name, d)
	}
}

// get is the count of one event.
func (e *events) get(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[key]
}

// String lists every event counted, for failure messages.
func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var lines []string
	for k, v := range e.n {
		lines = append(lines, fmt.Sprintf("%s = %d", k, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// want waits until each event has its count.
func (e *events) want(t *testing.T, counts map[string]int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for k, v := range counts {
			ok = ok && e.get(k) == v
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for k, v := range counts {
				if got := e.get(k); got != v {
					t.Errorf("%s = %d, want %d", k, got, v)
				}
			}
			t.Fatalf("all events:\n%s", e)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *events) Published(ex, q string) { e.add(1, "Published", ex, q) }
func (e *events) Confirmed(ex, q string, o core.ConfirmOutcome, d time.Duration) {
	e.dur("Confirmed", d)
	e.add(1, "Confirmed", ex, q, string(o))
}
func (e *events) Returned(ex, q string)             { e.add(1, "Returned", ex, q) }
func (e *events) CallPending(q string, delta int)   { e.add(delta, "CallPending", q) }
func (e *events) Replied(q string, d time.Duration) { e.dur("Replied", d); e.add(1, "Replied", q) }
func (e *events) ReplyDropped()                     { e.add(1, "ReplyDropped") }
func (e *events) InFlight(q string, delta int)      { e.add(delta, "InFlight", q) }
func (e *events) Handled(q string, c codes.Code, d time.Duration) {
	e.dur("Handled", d)
	e.add(1, "Handled", q, c.String())
}
func (e *events) Redelivered(q string)            { e.add(1, "Redelivered", q) }
func (e *events) DeadLettered(q string)           { e.add(1, "DeadLettered", q) }
func (e *events) Expired(q string)                { e.add(1, "Expired", q) }
func (e *events) SubscriptionOpened(ex, q string) { e.add(1, "SubscriptionOpened", ex, q) }
func (e *events) ConnectionDown(c string)         { e.add(1, "ConnectionDown", c) }
func (e *events) ConnectFailed(c string)          { e.add(1, "ConnectFailed", c) }
func (e *events) Blocked(c string, active bool)   { e.add(1, "Blocked", c, fmt.Sprint(active)) }
func (e *events) ConnectionUp(c string, re bool)  { e.add(1, "ConnectionUp", c, fmt.Sprint(re)) }
func (e *events) SubscriptionClosed(ex, q string, r core.CloseReason) {
	e.add(1, "SubscriptionClosed", ex, q, string(r))
}

// metered returns a Supervisor on the test broker whose events go to ev.
func metered(t *testing.T, ev *events) *core.Supervisor {
	return core.NewSupervisor(core.Config{
		URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name(),
		Logger: warrentest.QuietLog, Metrics: ev,
	})
}

// TestMetricsOfPublishings: a publishing is counted when sent and when
// confirmed; a return is counted as such; only known names are labels.
func TestMetricsOfPublishings(t *testing.T) {
	t.Parallel()
	known, unknown, missing := brokertest.Name(t, "known"), brokertest.Name(t, "unknown"), brokertest.Name(t, "missing")
	declare(t, known)
	declare(t, unknown)
	ev := newEvents(t)
	sup := metered(t, ev)
	sup.Known(known)
	pub := core.NewPublisher(sup, core.PublisherConfig{})
	run(t, sup)
	ctx := context.Background()
	for _, q := range []string{known, known, unknown} {
		if err := pub.Publish(ctx, &core.Message{RoutingKey: q, Mandatory: true}); err != nil {
			t.Fatalf("publish to %q: %v", q, err)
		}
	}
	if err := pub.Publish(ctx, &core.Message{RoutingKey: missing, Mandatory: true}); err == nil {
		t.Fatal("publish to a missing queue succeeded")
	}
	if err := pub.Publish(ctx, &core.Message{Exchange: "amq.topic", RoutingKey: "a.b"}); err != nil {
		t.Fatal(err)
	}
	ev.want(t, map[string]int{
		"Published ," + known:          2,
		"Confirmed ," + known + ",ack": 2,
		"Published ,_OTHER":            2, // unknown and missing
		"Confirmed ,_OTHER,ack":        2, // a returned publishing is acked too
		"Returned ,_OTHER":             1,
		"Published _OTHER,":            1, // amq.topic: not known either
		"Confirmed _OTHER,,ack":        1,
	})
}

// TestMetricsOfCallsAndRequests: the Client's and the Server's events for
// replies, errors, expired requests, requests without reply_to and a
// reply nobody waits for any more.
func TestMetricsOfCallsAndRequests(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	ev := newEvents(t)
	ssup := metered(t, ev)
	core.NewServer(ssup, core.ServerConfig{Queue: core.QueueSpec{Name: queue}, Logger: warrentest.QuietLog},
		core.HandlerFunc(func(ctx context.Context, d *amqp.Delivery) (amqp.Publishing, error) {
			switch string(d.Body) {
			case "bad":
				return amqp.Publishing{}, core.Argumentf("bad")
			case "slow":
				time.Sleep(300 * time.Millisecond) // past the caller's deadline, on purpose
			}
			return amqp.Publishing{Body: d.Body}, nil
		}))
	run(t, ssup)
	csup := metered(t, ev)
	client := core.NewClient(csup, core.ClientConfig{})
	client.Watch(queue)
	run(t, csup)
	call := func(body string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := client.Call(ctx, queue, amqp.Publishing{Body: []byte(body)})
		return err
	}
	for _, body := range []string{"a", "b", "bad"} {
		_ = call(body, 5*time.Second)
	}
	if err := call("slow", 100*time.Millisecond); status.Code(core.Status(err)) != codes.DeadlineExceeded {
		t.Fatalf("slow call: %v, want DEADLINE_EXCEEDED", err)
	}
	// Straight to the queue: one without reply_to, one already expired.
	ch := brokertest.Channel(t)
	expired := amqp.Table{}
	wire.SetDeadline(expired, time.Now().Add(-time.Second))
	for _, p := range []amqp.Publishing{
		{Body: []byte("nobody to answer")},
		{Body: []byte("too late"), ReplyTo: "amq.rabbitmq.reply-to.none", Headers: expired},
	} {
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, p); err != nil {
			t.Fatal(err)
		}
	}
	ev.want(t, map[string]int{
		"Published ," + queue:                    4,
		"CallPending " + queue:                   0,
		"Replied " + queue:                       3, // the slow one came after its call gave up
		"ReplyDropped ":                          1,
		"Handled " + queue + ",OK":               3,
		"Handled " + queue + ",InvalidArgument":  2, // "bad", and no reply_to
		"Handled " + queue + ",DeadlineExceeded": 1,
		"Expired " + queue:                       1,
		"DeadLettered " + queue:                  1,
		"InFlight " + queue:                      0,
	})
}

// TestMetricsOfAConsumer: a redelivery, SetOutcome's code, and a
// rejection without requeue.
func TestMetricsOfAConsumer(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "work")
	ev := newEvents(t)
	sup := metered(t, ev)
	core.NewConsumer(sup, core.ConsumerConfig{Queue: core.QueueSpec{Name: queue}, Concurrency: 1},
		func(ctx context.Context, _ *amqp.Channel, d *amqp.Delivery) {
			if !d.Redelivered {
				_ = d.Nack(false, true) // again, please
				return
			}
			core.SetOutcome(ctx, status.Error(codes.FailedPrecondition, "no"))
			_ = d.Reject(false)
		})
	run(t, sup)
	if err := brokertest.Channel(t).PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	ev.want(t, map[string]int{
		"Handled " + queue + ",Unknown":            1, // requeued, no outcome set
		"Redelivered " + queue:                     1,
		"Handled " + queue + ",FailedPrecondition": 1,
		"DeadLettered " + queue:                    1,
		"InFlight " + queue:                        0,
	})
}

// TestMetricsOfSubscriptionsAndTheConnection: a subscription opened and
// ended, labelled by its exchange; the connection up, lost, up again.
func TestMetricsOfSubscriptionsAndTheConnection(t *testing.T) {
	t.Parallel()
	exchange := brokertest.Name(t, "fanout") // not auto-delete: subscribed to twice
	if err := brokertest.Channel(t).ExchangeDeclare(exchange, amqp.ExchangeFanout, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ev := newEvents(t)
	sup := metered(t, ev)
	sup.Known(exchange)
	subs := core.NewSubscriber(sup)
	run(t, sup)
	conn := "warren-test-" + t.Name()
	ev.want(t, map[string]int{"ConnectionUp " + conn + ",false": 1})

	sub, err := subs.Subscribe(context.Background(), core.SubscriptionConfig{Bindings: []core.Binding{{Exchange: exchange}}})
	if err != nil {
		t.Fatal(err)
	}
	ev.want(t, map[string]int{"SubscriptionOpened " + exchange + ",": 1})
	sub.Close()
	ev.want(t, map[string]int{"SubscriptionClosed " + exchange + ",,ended": 1})

	if _, err := subs.Subscribe(context.Background(), core.SubscriptionConfig{Bindings: []core.Binding{{Exchange: exchange}}}); err != nil {
		t.Fatal(err)
	}
	// The management API lists a new connection after a while.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		n, err := brokertest.CloseConnections(conn)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker lists no connection named %q", conn)
		}
	}
	ev.want(t, map[string]int{
		"SubscriptionClosed " + exchange + ",,lost": 1,
		"ConnectionDown " + conn:                    1,
		"ConnectionUp " + conn + ",true":            1,
	})
}

func TestMetricsOfAFailedConnect(t *testing.T) {
	t.Parallel()
	ev := newEvents(t)
	sup := core.NewSupervisor(core.Config{URLs: []string{"amqp://guest:guest@127.0.0.1:1/"}, Name: "nowhere", Logger: warrentest.QuietLog, Metrics: ev})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	warrentest.Eventually(t, 10*time.Second, "a failed connect counted", func() bool { return ev.get("ConnectFailed nowhere") > 0 })
}
