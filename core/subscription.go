package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Binding binds a subscription's queue to an exchange.
type Binding struct {
	Exchange string
	Key      string
}

// SubscriptionConfig configures one subscription.
type SubscriptionConfig struct {
	// Queue is the queue to consume. With an empty Name the subscription
	// declares a server-named, exclusive, auto-delete queue of its own
	// (with MaxLength and Overflow) and deletes it when it ends; with a
	// name it declares the queue as Queue says (one that exists with
	// other arguments is used as it is) and consumes it, competing with
	// its other consumers, and leaves it in place.
	Queue QueueSpec
	// Bindings are bound to the queue before consuming.
	Bindings []Binding
	// Prefetch is the basic.qos prefetch count: the deliveries the broker
	// sends before it waits for an acknowledgement, and so the most the
	// subscription holds in the gateway. Default: 256.
	Prefetch int
	// MaxLength is the x-max-length of a server-named queue: the backlog
	// the broker keeps for a client that reads slowly. A subscription
	// whose queue reaches it ends with ErrOverflow. Default: no limit.
	MaxLength int
	// Overflow is the x-overflow policy of a server-named queue with a
	// MaxLength. Default: "drop-head" (the broker drops the oldest
	// message; "reject-publish" would nack the publishers, so one slow
	// subscriber would fail everyone's emits).
	Overflow string
	// OverflowCheck is how often, while deliveries wait for the client,
	// the subscription asks the broker how long its queue is. Idle
	// subscriptions are never asked about. Default: 1s.
	OverflowCheck time.Duration
	// Setup, if set, runs on the subscription's channel after the queue
	// (named queue) is declared and bound and before consuming: a place
	// for further declarations that must live and die with the
	// subscription. An error ends the subscription before it began.
	Setup func(ch *amqp.Channel, queue string) error
}

func (c SubscriptionConfig) withDefaults() SubscriptionConfig {
	if c.Prefetch <= 0 {
		c.Prefetch = 256
	}
	if c.Overflow == "" {
		c.Overflow = "drop-head"
	}
	if c.OverflowCheck <= 0 {
		c.OverflowCheck = time.Second
	}
	return c
}

// Subscriber opens subscriptions on its Supervisor's connection.
//
// Concurrency: Subscribe is safe for concurrent use. Every subscription
// owns one channel and ends with the connection; Disconnected waits for
// the subscriptions' AMQP work (not for their clients).
type Subscriber struct {
	sess atomic.Pointer[subSession]
	mt   *meter
	tc   *tracer
}

type subSession struct {
	conn   *Conn
	mu     sync.Mutex
	closed bool
	work   sync.WaitGroup // the pumps on conn
}

// NewSubscriber returns a Subscriber on sup's connection; it adds itself
// to sup, so it must be built before sup runs.
func NewSubscriber(sup *Supervisor) *Subscriber {
	s := &Subscriber{mt: sup.mt, tc: sup.tc}
	sup.Add(s)
	return s
}

// Connected implements Component.
func (s *Subscriber) Connected(_ context.Context, conn *Conn) error {
	s.sess.Store(&subSession{conn: conn})
	return nil
}

// Disconnected waits for the subscriptions' pumps, which end because their
// channels closed with the connection (Component).
func (s *Subscriber) Disconnected(error) {
	sess := s.sess.Swap(nil)
	if sess == nil {
		return
	}
	sess.mu.Lock()
	sess.closed = true
	sess.mu.Unlock()
	sess.work.Wait()
}

// Subscription is one consumer whose deliveries go to one client.
//
// A pump goroutine owns the subscription's channel: it moves deliveries
// into a buffer of Prefetch (so it never blocks on the client), asks the
// broker for the queue's length while deliveries wait (ErrOverflow), and
// when the subscription ends, for any reason and even while the client is
// blocked, deletes what it declared and closes the channel. Exactly one
// goroutine calls Stream, which hands each delivery on and acknowledges
// it only after that.
type Subscription struct {
	cfg   SubscriptionConfig
	conn  *Conn
	ch    *amqp.Channel
	queue string
	owned bool // a server-named queue, deleted at the end

	ctx         context.Context
	cancel      context.CancelCauseFunc
	buf         chan *amqp.Delivery // closed by the pump when it ends
	done        chan struct{}       // closed when the pump cleaned up
	outstanding atomic.Int64        // deliveries buffered or sent, not acknowledged

	mt     *meter
	labels [2]string // exchange and queue, for the metrics
	tc     *tracer
}

// Subscribe declares and binds the queue cfg describes and starts
// consuming it. The subscription lives until ctx ends, Stream returns, or
// the connection or channel closes. It fails at once with ErrNotConnected
// or ErrBlocked when there is no connection, or the broker blocks it.
func (s *Subscriber) Subscribe(ctx context.Context, cfg SubscriptionConfig) (*Subscription, error) {
	for _, b := range cfg.Bindings {
		if err := CheckScope(ctx, KeySubscribe, b.Exchange, b.Key); err != nil {
			return nil, err
		}
	}
	sess := s.sess.Load()
	if sess == nil {
		return nil, ErrNotConnected
	}
	if sess.conn.Blocked() {
		// A blocked connection's frames wait in the broker until the
		// alarm ends, and amqp091-go's declarations take no context:
		// fail now rather than hang.
		return nil, ErrBlocked
	}
	sess.mu.Lock()
	if sess.closed {
		sess.mu.Unlock()
		return nil, ErrNotConnected
	}
	sess.work.Add(1)
	sess.mu.Unlock()
	sub, deliveries, err := subscribe(ctx, sess.conn, cfg.withDefaults())
	if err != nil {
		sess.work.Done()
		return nil, err
	}
	sub.mt, sub.tc = s.mt, s.tc
	if s.mt.on {
		sub.labels = sub.metricLabels()
		s.mt.SubscriptionOpened(sub.labels[0], sub.labels[1])
	}
	go func() {
		defer sess.work.Done()
		sub.pump(deliveries)
	}()
	return sub, nil
}

func subscribe(ctx context.Context, conn *Conn, cfg SubscriptionConfig) (sub *Subscription, deliveries <-chan amqp.Delivery, err error) {
	if cfg.Queue.Name != "" {
		if _, err := DeclareQueue(conn.Connection, cfg.Queue, nil); err != nil {
			return nil, nil, err
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, ChannelError("open channel", err)
	}
	queue, owned := cfg.Queue.Name, cfg.Queue.Name == ""
	declared := false
	defer func() {
		if err == nil {
			return
		}
		_ = ch.Close()
		if owned && declared {
			// A failed step (a bind to a missing exchange kills the
			// channel) must not leave the queue on the broker until the
			// connection ends.
			if c, cerr := conn.Channel(); cerr == nil {
				_, _ = c.QueueDelete(queue, false, false, false)
				_ = c.Close()
			}
		}
	}()
	if err = ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return nil, nil, ChannelError("set prefetch", err)
	}
	if owned {
		var args amqp.Table
		if cfg.MaxLength > 0 {
			args = amqp.Table{"x-max-length": int64(cfg.MaxLength), "x-overflow": cfg.Overflow}
		}
		var q amqp.Queue
		if q, err = ch.QueueDeclare("", false, true, true, false, args); err != nil {
			return nil, nil, ChannelError("declare queue", err)
		}
		queue, declared = q.Name, true
	}
	for _, b := range cfg.Bindings {
		if err = ch.QueueBind(queue, b.Key, b.Exchange, false, nil); err != nil {
			return nil, nil, ChannelError(fmt.Sprintf("bind queue to %q with %q", b.Exchange, b.Key), err)
		}
	}
	if cfg.Setup != nil {
		if err = cfg.Setup(ch, queue); err != nil {
			return nil, nil, err
		}
	}
	deliveries, err = ch.Consume(queue, "", false, owned, false, false, nil)
	if err != nil {
		return nil, nil, ChannelError(fmt.Sprintf("consume %q", queue), err)
	}
	sctx, cancel := context.WithCancelCause(ctx)
	return &Subscription{
		cfg: cfg, conn: conn, ch: ch, queue: queue, owned: owned,
		ctx: sctx, cancel: cancel,
		buf:  make(chan *amqp.Delivery, cfg.Prefetch),
		done: make(chan struct{}),
	}, deliveries, nil
}

// metricLabels are the subscription's exchange (its first binding's) and
// queue (a named one; a server-named queue is none).
func (s *Subscription) metricLabels() [2]string {
	var l [2]string
	if len(s.cfg.Bindings) > 0 {
		l[0] = s.mt.name(s.cfg.Bindings[0].Exchange)
	}
	if !s.owned {
		l[1] = s.mt.name(s.queue)
	}
	return l
}

// Queue is the name of the queue the subscription consumes.
func (s *Subscription) Queue() string { return s.queue }

// Close ends the subscription and waits until its queue (if it declared
// one) and channel are gone. It is idempotent.
func (s *Subscription) Close() {
	s.cancel(nil)
	<-s.done
}

// Stream hands every delivery to send, acknowledging it once send returned
// nil, until the subscription ends; then it closes the subscription and
// returns why it ended: send's error, the context's cause (the client's
// cancel, or what the caller cancelled it with), ErrOverflow, or the loss
// of the connection or channel. Only one goroutine may call Stream.
//
// Acknowledgements are batched (multiple) whenever no further delivery is
// waiting, and at least every Prefetch/2 deliveries.
func (s *Subscription) Stream(send func(*amqp.Delivery) error) error {
	defer s.Close()
	acks := newAcker(s.ch, s.cfg.Prefetch/2, func(n int) { s.outstanding.Add(-int64(n)) })
	for {
		var d *amqp.Delivery
		var ok bool
		select {
		case d, ok = <-s.buf:
		default:
			acks.flush() // nothing is waiting: acknowledge what was sent
			select {
			case d, ok = <-s.buf:
			case <-s.ctx.Done():
				return context.Cause(s.ctx)
			}
		}
		if !ok || s.ctx.Err() != nil {
			return context.Cause(s.ctx)
		}
		if err := s.send(send, d); err != nil {
			return err // not acknowledged: requeued, or deleted with the queue
		}
		acks.take(d.DeliveryTag)
	}
}

// send hands d to send, under its span when tracing: the child of the
// subscription's context, linked to the publishing's.
func (s *Subscription) send(send func(*amqp.Delivery) error, d *amqp.Delivery) error {
	if !s.tc.on {
		return send(d)
	}
	name := s.queue
	if len(s.cfg.Bindings) > 0 {
		name = s.cfg.Bindings[0].Exchange
	}
	span := s.tc.deliver(s.ctx, name, d)
	err := send(d)
	end(span, err)
	return err
}

// pump moves deliveries into buf until the subscription ends, then
// deletes the queue it declared, closes the channel and closes buf.
func (s *Subscription) pump(deliveries <-chan amqp.Delivery) {
	closed := s.ch.NotifyClose(make(chan *amqp.Error, 1))
	reason := CloseEnded
	defer close(s.done)
	defer func() { s.mt.SubscriptionClosed(s.labels[0], s.labels[1], reason) }()
	defer close(s.buf)
	defer func() {
		if s.owned {
			_, _ = s.ch.QueueDelete(s.queue, false, false, false)
		}
		_ = s.ch.Close()
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		select {
		case <-s.ctx.Done():
			return
		case d, ok := <-deliveries:
			if !ok {
				reason = CloseLost
				s.cancel(s.lost(closed))
				return
			}
			s.outstanding.Add(1)
			if s.cfg.MaxLength > 0 && s.owned && !armed {
				timer.Reset(s.cfg.OverflowCheck)
				armed = true
			}
			// Never blocks: buf holds Prefetch, and the broker sends no
			// more than Prefetch unacknowledged deliveries.
			select {
			case s.buf <- &d:
			case <-s.ctx.Done():
				return
			}
		case <-timer.C:
			armed = false
			if s.outstanding.Load() == 0 {
				continue
			}
			if s.overflowing() {
				reason = CloseOverflow
				s.cancel(ErrOverflow)
				return
			}
			timer.Reset(s.cfg.OverflowCheck)
			armed = true
		}
	}
}

// overflowing asks the broker for the queue's length (a passive declare on
// the subscription's own channel).
func (s *Subscription) overflowing() bool {
	q, err := s.ch.QueueDeclarePassive(s.queue, false, true, true, false, nil)
	if err != nil {
		return false // the channel is gone; the deliveries channel closes next
	}
	return q.Messages >= s.cfg.MaxLength
}

// lost is why the channel closed under the subscription: the connection
// was lost, or the broker closed the channel (someone deleted the queue).
func (s *Subscription) lost(closed <-chan *amqp.Error) error {
	if s.conn.IsClosed() {
		return ErrConnectionLost
	}
	select {
	case e, ok := <-closed:
		if ok && e != nil {
			return fmt.Errorf("core: the broker closed the subscription: %w", e)
		}
	default:
	}
	return errors.New("core: the broker ended the subscription")
}
