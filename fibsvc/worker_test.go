package fibsvc_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/worker"
)

// runFib runs a Fibonacci worker until the test ends.
func runFib(t testing.TB, cfg fibsvc.WorkerConfig) *fibsvc.Worker {
	t.Helper()
	cfg.Logger = warrentest.QuietLog
	w := fibsvc.NewWorker(cfg)
	warrentest.StartWorkers(t, worker.Config{}, w)
	return w
}

// rawClient is a tutorial-style RPC client: an exclusive reply queue.
type rawClient struct {
	ch      *amqp.Channel
	queue   string
	replyTo string
	replies <-chan amqp.Delivery
}

func newRawClient(t testing.TB, queue string) *rawClient {
	t.Helper()
	ch := brokertest.Channel(t)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{ch: ch, queue: queue, replyTo: q.Name, replies: replies}
}

func (c *rawClient) publish(t testing.TB, p amqp.Publishing) {
	t.Helper()
	if err := c.ch.PublishWithContext(context.Background(), "", c.queue, false, false, p); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// next waits up to wait for a reply; ok is false if none came.
func (c *rawClient) next(wait time.Duration) (amqp.Delivery, bool) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case d := <-c.replies:
		return d, true
	case <-t.C:
		return amqp.Delivery{}, false
	}
}

func TestFibonacciWorkerAnswersBadRequestsAndKeepsServing(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	w := runFib(t, fibsvc.WorkerConfig{Queue: queue})
	c := newRawClient(t, queue)
	tests := []struct {
		name      string
		pub       amqp.Publishing
		wantReply bool
		wantCode  codes.Code
		wantMsg   string
	}{
		{name: "letters", pub: amqp.Publishing{Body: []byte("abc")}, wantReply: true, wantCode: codes.InvalidArgument, wantMsg: "not a decimal number"},
		{name: "negative", pub: amqp.Publishing{Body: []byte("-5")}, wantReply: true, wantCode: codes.InvalidArgument, wantMsg: "negative"},
		{name: "empty body", pub: amqp.Publishing{}, wantReply: true, wantCode: codes.InvalidArgument, wantMsg: "empty body"},
		{name: "1 MB body", pub: amqp.Publishing{Body: bytes.Repeat([]byte("7"), 1<<20)}, wantReply: true, wantCode: codes.InvalidArgument, wantMsg: "1048576 bytes"},
		{name: "too large", pub: amqp.Publishing{Body: []byte("100001")}, wantReply: true, wantCode: codes.InvalidArgument, wantMsg: "larger than"},
		{name: "invalid utf-8", pub: amqp.Publishing{Body: []byte{0xc3, 0x28}}, wantReply: true, wantCode: codes.InvalidArgument, wantMsg: "not a decimal"},
		{name: "JSON body", pub: amqp.Publishing{ContentType: "application/json", Body: []byte(`{"n":3}`)}, wantReply: true, wantCode: codes.InvalidArgument, wantMsg: "not a decimal number"},
		{name: "bunny's content type", pub: amqp.Publishing{ContentType: "application/octet-stream", Body: []byte("30")}, wantReply: true},
		{name: "expired deadline", pub: amqp.Publishing{Body: []byte("30"), Headers: amqp.Table{wire.HeaderDeadline: time.Now().Add(-time.Second).UnixMilli()}}, wantReply: false},
		{name: "garbage deadline header", pub: amqp.Publishing{Body: []byte("10"), Headers: amqp.Table{wire.HeaderDeadline: "soon"}}, wantReply: true},
		{name: "no reply_to", pub: amqp.Publishing{Body: []byte("30")}, wantReply: false},
	}
	for i, tt := range tests {
		// Subtests run in order: the worker must survive each case.
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pub
			p.CorrelationId = tt.name
			if tt.name != "no reply_to" {
				p.ReplyTo = c.replyTo
			}
			c.publish(t, p)
			d, ok := c.next(500 * time.Millisecond)
			if !tt.wantReply {
				if ok {
					t.Fatalf("got reply %q, want none", d.Body)
				}
			} else {
				if !ok {
					t.Fatal("no reply")
				}
				if d.CorrelationId != tt.name {
					t.Fatalf("reply correlation_id %q, want %q", d.CorrelationId, tt.name)
				}
				code, msg, isErr := wire.ReplyError(d.Headers)
				if tt.wantCode == codes.OK {
					if isErr {
						t.Fatalf("error reply %v %q, want a value", code, msg)
					}
				} else if !isErr || code != tt.wantCode || !strings.Contains(msg, tt.wantMsg) {
					t.Fatalf("reply %v %q (error %v), want %v containing %q", code, msg, isErr, tt.wantCode, tt.wantMsg)
				}
			}
			// The worker keeps serving.
			c.publish(t, amqp.Publishing{Body: []byte("10"), ReplyTo: c.replyTo, CorrelationId: "ok"})
			d, ok = c.next(5 * time.Second)
			if !ok || string(d.Body) != "55" || d.CorrelationId != "ok" {
				t.Fatalf("after case %d: reply %q %q (got one: %v), want 55", i, d.Body, d.CorrelationId, ok)
			}
		})
	}
	st := w.Stats()
	if st.Rejected != 1 || st.Expired != 1 || st.Served == 0 {
		t.Errorf("stats %+v; want Served > 0, Rejected 1, Expired 1", st)
	}
	// Nothing is left unacknowledged or queued.
	q, err := brokertest.Channel(t).QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil || q.Messages != 0 {
		t.Errorf("queue holds %d messages (%v), want 0", q.Messages, err)
	}
}

func TestFibonacciWorkersCompete(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	w1 := runFib(t, fibsvc.WorkerConfig{Queue: queue, Prefetch: 1, Concurrency: 1})
	w2 := runFib(t, fibsvc.WorkerConfig{Queue: queue, Prefetch: 1, Concurrency: 1})
	c := newRawClient(t, queue)
	const calls = 200
	for i := range calls {
		c.publish(t, amqp.Publishing{Body: []byte("20"), ReplyTo: c.replyTo, CorrelationId: string(rune('a' + i%26))})
	}
	for range calls {
		d, ok := c.next(10 * time.Second)
		if !ok || string(d.Body) != "6765" {
			t.Fatalf("reply %q (got one: %v), want 6765", d.Body, ok)
		}
	}
	// A worker counts a reply after publishing it: let the counts settle.
	var s1, s2 uint64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s1, s2 = w1.Stats().Served, w2.Stats().Served
		if s1+s2 == calls {
			break
		}
	}
	if s1+s2 != calls || s1 == 0 || s2 == 0 {
		t.Errorf("workers served %d and %d, want both > 0 summing to %d", s1, s2, calls)
	}
}

func TestFibonacciWorkerUsesExistingQueueWithOtherArguments(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	// The older tutorials declare rpc_queue as a plain classic queue;
	// warren's quorum declaration must not make the worker fail.
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	runFib(t, fibsvc.WorkerConfig{Queue: queue})
	c := newRawClient(t, queue)
	c.publish(t, amqp.Publishing{Body: []byte("30"), ReplyTo: c.replyTo, CorrelationId: "x"})
	if d, ok := c.next(10 * time.Second); !ok || string(d.Body) != "832040" {
		t.Fatalf("reply %q (got one: %v), want 832040", d.Body, ok)
	}
	brokertest.WantClassic(t, queue, false)
}

func TestFibonacciWorkerQueueTypes(t *testing.T) {
	t.Parallel()
	for _, typ := range []core.QueueType{"", core.QueueQuorum, core.QueueClassic} {
		t.Run("type "+string(typ), func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Name(t, "rpc")
			runFib(t, fibsvc.WorkerConfig{Queue: queue, QueueType: typ})
			if typ == core.QueueClassic {
				brokertest.WantClassic(t, queue, false) // as the older tutorials
			} else {
				brokertest.WantQuorum(t, queue) // as today's tutorials
			}
		})
	}
}

// TestHandlerAcceptsAnyContentType: the body is the request, whatever
// the content type says: Ruby's bunny sends application/octet-stream by
// default, pika and amqplib none.
func TestHandlerAcceptsAnyContentType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		contentType string
		body        string
		want        string // "" for INVALID_ARGUMENT
	}{
		{"", "30", "832040"},
		{"text/plain", "30", "832040"},
		{"text/plain; charset=utf-8", "30", "832040"},
		{"application/octet-stream", "30", "832040"},
		{"application/octet-stream", "30\n", "832040"},
		{"application/json", "30", "832040"},
		{"x-anything/at-all", "10", "55"},
		{"application/octet-stream", "\x00\x00\x00\x1e", ""},
		{"application/json", `{"n": 30}`, ""},
		{"text/plain", "thirty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.contentType+" "+tt.body, func(t *testing.T) {
			t.Parallel()
			p, err := fibsvc.Handler(context.Background(), &amqp.Delivery{ContentType: tt.contentType, Body: []byte(tt.body)})
			if tt.want == "" {
				if status.Code(core.Status(err)) != codes.InvalidArgument {
					t.Fatalf("Handler = %q, %v; want INVALID_ARGUMENT", p.Body, err)
				}
				return
			}
			if err != nil || string(p.Body) != tt.want {
				t.Fatalf("Handler = %q, %v; want %s", p.Body, err, tt.want)
			}
		})
	}
}

func TestFibonacciWorkerShutdownFinishesWhatItHolds(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	w := runFib(t, fibsvc.WorkerConfig{Queue: queue})
	c := newRawClient(t, queue)
	const n = 50
	for i := range n {
		c.publish(t, amqp.Publishing{Body: []byte("90"), ReplyTo: c.replyTo, CorrelationId: strconv.Itoa(i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	answered := map[string]bool{}
	for {
		d, ok := c.next(time.Second)
		if !ok {
			break
		}
		if string(d.Body) != "2880067194370816120" {
			t.Errorf("reply %q to request %s, want fib(90)", d.Body, d.CorrelationId)
		}
		answered[d.CorrelationId] = true
	}
	// Every request was answered or is still queued for another worker:
	// nothing is lost (at least once: a request may be both).
	q, err := brokertest.Channel(t).QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := w.Stats().Served
	t.Logf("answered %d distinct requests (%d replies published), %d still queued", len(answered), served, q.Messages)
	if len(answered)+q.Messages < n {
		t.Errorf("answered %d + queued %d, want at least %d", len(answered), q.Messages, n)
	}
	if q.Consumers != 0 {
		t.Errorf("queue has %d consumers after Shutdown, want 0", q.Consumers)
	}
}

// A worker that was shut down consumes nothing more, even when its
// connection drops and the Supervisor reconnects (as it may while the
// process drains).
func TestFibonacciWorkerShutdownHoldsAcrossReconnect(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	name := "warren-test-" + t.Name()
	var sessions warrentest.Sessions
	sup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: name, Logger: warrentest.QuietLog}, &sessions)
	w := fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: queue, Logger: warrentest.QuietLog})
	w.Attach(sup)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sup.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "the worker to connect", sup.Connected)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := w.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// The broker drops the connection (the management API may list it only
	// after a moment); the Supervisor reconnects.
	eventually(t, "the broker to close the connection", func() bool {
		n, err := brokertest.CloseConnections(name)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	eventually(t, "a second session", func() bool { return sessions.N() >= 2 && sup.Connected() })

	c := newRawClient(t, queue)
	c.publish(t, amqp.Publishing{Body: []byte("10"), ReplyTo: c.replyTo, CorrelationId: "after-shutdown"})
	if d, ok := c.next(500 * time.Millisecond); ok {
		t.Errorf("the worker answered request %q after Shutdown and a reconnect", d.CorrelationId)
	}
	q, err := brokertest.Channel(t).QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Consumers != 0 || q.Messages != 1 {
		t.Errorf("queue has %d consumers and %d messages, want 0 and the 1 request", q.Consumers, q.Messages)
	}
}
