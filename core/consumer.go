package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Queue is the queue consumed, declared as it says on every
	// connection (one that exists with other arguments is used as it is).
	// Its Name is required.
	Queue QueueSpec
	// Prefetch is the count of unacknowledged deliveries the broker may
	// push to this Consumer at once. A negative value sets no limit.
	// Default (0): 64.
	Prefetch int
	// Concurrency is the count of goroutines running the handler.
	// Default: runtime.GOMAXPROCS(0).
	Concurrency int
	// Name prefixes the consumer tag, as the management UI shows it.
	// Default: "warren".
	Name string
	// Logger receives failures. Default: the Supervisor's.
	Logger *slog.Logger
	// Declare, when set, declares what else the DeliveryFunc needs (a
	// dead-letter queue, an exchange it publishes to) on every connection,
	// after Queue and before consuming starts. An error fails the
	// connection's set-up, as a failed declaration of Queue does.
	Declare func(conn *Conn) error
	// HandBack makes a draining Consumer hand the deliveries it received
	// but did not start back to the broker (requeued, for another
	// consumer) instead of handling them: right for long work (a task),
	// where Shutdown should wait for the running deliveries only.
	HandBack bool
}

func (c ConsumerConfig) withDefaults(sup *Supervisor) ConsumerConfig {
	if c.Prefetch == 0 {
		c.Prefetch = 64
	}
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.GOMAXPROCS(0)
	}
	if c.Name == "" {
		c.Name = "warren"
	}
	if c.Logger == nil {
		c.Logger = sup.Logger()
	}
	return c
}

// A DeliveryFunc handles one delivery of a Consumer and settles it: it
// acknowledges, rejects or nacks d (on ch, the channel d came on, where it
// may also publish). ctx ends when the Consumer loses its connection.
type DeliveryFunc func(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery)

// Consumer is the worker side's one consume loop: it consumes a queue
// with manual acknowledgements and a prefetch, on every connection its
// Supervisor makes, and hands each delivery to its DeliveryFunc, which
// settles it. Server (request/reply) and the SDK's task routes are built
// on it.
//
// Concurrency: Concurrency goroutines per connection run the
// DeliveryFunc; Shutdown stops consuming and waits for them. After
// Shutdown the Consumer consumes nothing more, even when its connection
// is lost and comes back. What a lost connection leaves unacknowledged
// the broker hands to another consumer. A consumer that ends while its
// connection lives (the queue was deleted, or its channel closed) starts
// again on a new channel (resume).
type Consumer struct {
	cfg    ConsumerConfig
	handle DeliveryFunc
	tag    string
	mt     *meter
	tc     *tracer
	label  string // the queue's, for the metrics

	draining atomic.Bool // Shutdown was called; read by the handler goroutines

	mu      sync.Mutex
	ch      *amqp.Channel // the current channel, nil while disconnected
	cancel  context.CancelFunc
	stopped bool          // Shutdown was called
	quit    chan struct{} // closed by Shutdown
	wg      sync.WaitGroup
}

// NewConsumer returns a Consumer on sup's connection; it adds itself to
// sup, so it must be built before sup runs.
func NewConsumer(sup *Supervisor, cfg ConsumerConfig, handle DeliveryFunc) *Consumer {
	cfg = cfg.withDefaults(sup)
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &Consumer{
		cfg:    cfg,
		handle: handle,
		tag:    fmt.Sprintf("%s-%s-%d-%s", cfg.Name, host, os.Getpid(), hex.EncodeToString(b[:])),
		mt:     sup.mt,
		tc:     sup.tc,
		quit:   make(chan struct{}),
	}
	sup.Known(cfg.Queue.Name)
	c.label = c.mt.name(cfg.Queue.Name)
	sup.Add(c)
	return c
}

// Connected declares the queue and starts consuming it (Component).
func (c *Consumer) Connected(ctx context.Context, conn *Conn) error {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return nil // a reconnect after Shutdown: stay connected, consume nothing
	}
	cons, err := c.consume(conn)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		// Shutdown came during set-up: handle nothing; closing the channel
		// hands what the broker sent to another consumer.
		_ = cons.ch.Close()
		return nil
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.start(hctx, conn, cons)
	return nil
}

// consuming is one channel's consumer of the queue.
type consuming struct {
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	closed     chan *amqp.Error // the channel's close, with the broker's reason
	cancelled  chan string      // the broker's basic.cancel (the queue was deleted)
}

// consume declares the queue and starts consuming it on a channel of its
// own.
func (c *Consumer) consume(conn *Conn) (*consuming, error) {
	if _, err := DeclareQueue(conn.Connection, c.cfg.Queue, c.cfg.Logger); err != nil {
		return nil, err
	}
	if c.cfg.Declare != nil {
		if err := c.cfg.Declare(conn); err != nil {
			return nil, err
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, ChannelError("open channel", err)
	}
	if c.cfg.Prefetch > 0 {
		if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
			_ = ch.Close()
			return nil, ChannelError("set prefetch", err)
		}
	}
	cons := &consuming{
		ch:        ch,
		closed:    ch.NotifyClose(make(chan *amqp.Error, 1)),
		cancelled: ch.NotifyCancel(make(chan string, 1)),
	}
	cons.deliveries, err = ch.Consume(c.cfg.Queue.Name, c.tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, ChannelError(fmt.Sprintf("consume %q", c.cfg.Queue.Name), err)
	}
	return cons, nil
}

// start runs the handler goroutines on cons's deliveries, and one that
// consumes again when they end while the connection lives (resume); under
// mu, so that a Shutdown that finds the channel also waits for them.
func (c *Consumer) start(ctx context.Context, conn *Conn, cons *consuming) {
	c.ch = cons.ch
	var handlers sync.WaitGroup
	for range c.cfg.Concurrency {
		handlers.Go(func() {
			for d := range cons.deliveries {
				if c.cfg.HandBack && c.draining.Load() {
					_ = d.Nack(false, true) // received, not started: requeued
					continue
				}
				c.deliver(ctx, cons.ch, &d)
			}
		})
	}
	c.wg.Go(func() {
		handlers.Wait()
		c.resume(ctx, conn, cons)
	})
}

// resume consumes the queue again, on a new channel, when the consumer
// ended while its connection lives: the broker cancelled it (someone
// deleted the queue, which resume declares again) or closed its channel
// (a channel error, such as a DeliveryFunc acknowledging a delivery
// twice). Without it the Consumer would stay connected and consume
// nothing until the connection failed. It tries again after a backoff
// until it succeeds, or the connection, the Consumer or ctx ends.
func (c *Consumer) resume(ctx context.Context, conn *Conn, lost *consuming) {
	var why any = "the broker cancelled the consumer"
	select {
	case tag := <-lost.cancelled:
		why = fmt.Sprintf("the broker cancelled consumer %q (the queue was deleted?)", tag)
	case err := <-lost.closed:
		if err != nil {
			why = err
		}
	default:
	}
	for failures := 0; ; failures++ {
		c.mu.Lock()
		stopped := c.stopped
		c.mu.Unlock()
		if stopped || ctx.Err() != nil || conn.IsClosed() {
			return
		}
		if failures == 0 {
			c.cfg.Logger.Warn("core: consumer lost; consuming again", "queue", c.cfg.Queue.Name, "why", why)
		}
		select {
		case <-time.After(backoff(consumeRetry, 10*consumeRetry, failures)):
		case <-ctx.Done():
			return
		case <-c.quit:
			return
		}
		cons, err := c.consume(conn)
		if err != nil {
			c.cfg.Logger.Warn("core: consume again", "queue", c.cfg.Queue.Name, "err", err)
			continue
		}
		c.mu.Lock()
		if c.stopped {
			c.mu.Unlock()
			_ = cons.ch.Close()
			return
		}
		c.start(ctx, conn, cons)
		c.mu.Unlock()
		c.cfg.Logger.Info("core: consuming again", "queue", c.cfg.Queue.Name)
		return
	}
}

// consumeRetry is the least wait before a lost consumer consumes again.
const consumeRetry = 100 * time.Millisecond

// deliver hands d to the DeliveryFunc, and tells the metrics about it:
// a redelivery, the handling in flight, how it ended and how long it took,
// and a rejection without requeue. When tracing, the DeliveryFunc runs
// under the delivery's consumer span, which ends with the outcome.
func (c *Consumer) deliver(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery) {
	if !c.mt.on && !c.tc.on {
		c.handle(ctx, ch, d)
		return
	}
	var span trace.Span
	if c.tc.on {
		ctx, span = c.tc.process(ctx, c.cfg.Queue.Name, d)
	}
	if c.mt.on && d.Redelivered {
		c.mt.Redelivered(c.label)
	}
	rec := &delivery{Acknowledger: d.Acknowledger, mt: c.mt, queue: c.label}
	d.Acknowledger = rec
	c.mt.InFlight(c.label, 1)
	start := c.mt.now()
	c.handle(context.WithValue(ctx, deliveryKey{}, rec), ch, d)
	if c.mt.on {
		c.mt.Handled(c.label, rec.result(), time.Since(start))
	}
	c.mt.InFlight(c.label, -1)
	if span != nil {
		endCode(span, rec.result())
	}
}

// Disconnected waits for the handler goroutines, which end because the
// connection closed their delivery channel (Component).
func (c *Consumer) Disconnected(error) {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	c.mu.Lock()
	c.ch, c.cancel = nil, nil
	c.mu.Unlock()
}

// Shutdown stops consuming and waits until the deliveries already
// received are handled (with HandBack, until the running ones are, the
// others being requeued). If ctx ends first, it ends the handlers'
// context, waits for them to return, and returns ctx.Err(): a handler
// must return promptly when its context ends. Call it before stopping the
// Supervisor: unacknowledged deliveries go back to the queue for another
// consumer when the connection closes. It is idempotent.
func (c *Consumer) Shutdown(ctx context.Context) error {
	c.draining.Store(true)
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.quit)
	}
	ch := c.ch
	c.mu.Unlock()
	if ch != nil {
		// basic.cancel makes the library close the delivery channel once
		// the broker confirmed; the goroutines drain what was buffered.
		_ = ch.Cancel(c.tag, false)
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel() // what the handlers leave unacknowledged is requeued
	}
	<-done
	return ctx.Err()
}
