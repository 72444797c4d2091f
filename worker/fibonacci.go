package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/internal/fib"
	"github.com/warrenrpc/warren/internal/wire"
)

// DefaultRPCQueue is the tutorial's RPC queue.
const DefaultRPCQueue = "rpc_queue"

// FibonacciConfig configures a Fibonacci worker. The zero value serves
// rpc_queue.
type FibonacciConfig struct {
	// Queue is the RPC queue to consume. Default: "rpc_queue".
	Queue string
	// QueueType is the type the worker declares the queue with when it does
	// not exist yet. Default: classic, as the tutorial declares it. A queue
	// that exists with other arguments is used as it is.
	QueueType amqpx.QueueType
	// Prefetch is the count of unacknowledged requests the broker may push
	// to this worker at once. Default: 64.
	Prefetch int
	// Concurrency is the count of goroutines computing replies.
	// Default: runtime.GOMAXPROCS(0).
	Concurrency int
	// Logger receives bad requests and failures. Default: slog.Default().
	Logger *slog.Logger
}

func (c FibonacciConfig) withDefaults() FibonacciConfig {
	if c.Queue == "" {
		c.Queue = DefaultRPCQueue
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 64
	}
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Fibonacci answers fib(n) requests from the RPC queue. It is an
// amqpx.Handler.
type Fibonacci struct {
	cfg FibonacciConfig
	tag string

	mu      sync.Mutex
	ch      *amqp.Channel // the current channel, nil while disconnected
	stopped bool          // Shutdown was called: consume nothing more

	wg sync.WaitGroup

	served, rejected, expired atomic.Uint64
}

// NewFibonacci returns a worker; hand it to an amqpx.Supervisor.
func NewFibonacci(cfg FibonacciConfig) *Fibonacci {
	host, _ := os.Hostname()
	return &Fibonacci{
		cfg: cfg.withDefaults(),
		tag: fmt.Sprintf("warren-fib-%s-%d-%d", host, os.Getpid(), tagSeq.Add(1)),
	}
}

var tagSeq atomic.Uint64

// Stats counts what the worker did: replies published (including error
// replies), requests rejected without a reply (no reply_to), and requests
// skipped because their deadline had passed.
func (w *Fibonacci) Stats() (served, rejected, expired uint64) {
	return w.served.Load(), w.rejected.Load(), w.expired.Load()
}

// Connected declares the RPC queue and starts consuming it.
func (w *Fibonacci) Connected(ctx context.Context, conn *amqp.Connection) error {
	w.mu.Lock()
	stopped := w.stopped
	w.mu.Unlock()
	if stopped {
		return nil // a reconnect after Shutdown: stay connected, consume nothing
	}
	if _, err := amqpx.DeclareQueue(conn, amqpx.QueueSpec{Name: w.cfg.Queue, Type: w.cfg.QueueType}, w.cfg.Logger); err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Qos(w.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	deliveries, err := ch.Consume(w.cfg.Queue, w.tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", w.cfg.Queue, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		// Shutdown came while we set up: handle nothing; closing the
		// channel hands what the broker sent to another worker.
		_ = ch.Close()
		return nil
	}
	w.ch = ch
	// Started under mu, so that a Shutdown that finds ch also waits for them.
	for range w.cfg.Concurrency {
		w.wg.Go(func() {
			for d := range deliveries {
				w.handle(ch, d)
			}
		})
	}
	return nil
}

// Disconnected waits for the handler goroutines, which end because the
// connection closed their delivery channel.
func (w *Fibonacci) Disconnected(error) {
	w.wg.Wait()
	w.mu.Lock()
	w.ch = nil
	w.mu.Unlock()
}

// Shutdown stops consuming and waits until the deliveries already received
// are answered and acknowledged, or ctx ends. The worker consumes nothing
// afterwards, not even after a reconnect. Call it before stopping the
// Supervisor: unacknowledged deliveries go back to the queue for another
// worker when the connection closes.
func (w *Fibonacci) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.stopped = true
	ch := w.ch
	w.mu.Unlock()
	if ch != nil {
		// Cancel makes the library close the delivery channel once the
		// broker confirmed; the goroutines drain what was buffered.
		_ = ch.Cancel(w.tag, false)
	}
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle answers one request. Every request with a reply_to gets a reply,
// an error reply when it is bad; the delivery is acknowledged only after
// the reply was published.
func (w *Fibonacci) handle(ch *amqp.Channel, d amqp.Delivery) {
	log := w.cfg.Logger
	if d.ReplyTo == "" {
		// Nobody to answer: drop it (or dead-letter it, if the queue has a
		// policy for that) instead of letting it cycle.
		w.rejected.Add(1)
		log.Warn("fibonacci: request without reply_to rejected", "queue", w.cfg.Queue, "correlation_id", d.CorrelationId, "body_bytes", len(d.Body))
		_ = d.Reject(false)
		return
	}
	if deadline, ok := wire.Deadline(d.Headers); ok && time.Now().After(deadline) {
		// The caller gave up; the work would be wasted.
		w.expired.Add(1)
		_ = d.Ack(false)
		return
	}
	reply := amqp.Publishing{
		ContentType:   wire.ContentTypeText,
		CorrelationId: d.CorrelationId,
	}
	n, err := parse(d)
	if err != nil {
		log.Info("fibonacci: bad request", "queue", w.cfg.Queue, "correlation_id", d.CorrelationId, "err", err)
		reply.Headers = wire.ErrorHeaders(codes.InvalidArgument, err.Error())
		reply.Body = []byte("error: " + err.Error())
	} else {
		reply.Body = fib.AppendCompute(make([]byte, 0, 24), n)
	}
	if err := ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, reply); err != nil {
		// The channel is gone; the broker requeues the unacknowledged
		// request for another worker.
		log.Warn("fibonacci: publish reply", "err", err)
		return
	}
	w.served.Add(1)
	_ = d.Ack(false)
}

// parse checks a request's content type and body.
func parse(d amqp.Delivery) (uint32, error) {
	if ct := d.ContentType; ct != "" && !strings.HasPrefix(ct, "text/plain") {
		return 0, fmt.Errorf("content type %q; want text/plain (the decimal text of n)", ct)
	}
	return fib.ParseRequest(d.Body)
}
