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

// subHistory is what a subscription on a Mux with a history has besides
// the live feed: a consumer of the stream of its own, while it replays.
//
// A subscription made by SubscribeFrom starts on its own consumer, from
// its starting point. Once that consumer has caught up with the broker
// (it has nothing more for now), the subscription joins the live feed,
// pending: it enters the index, where the live deliveries collect in its
// buffer, and reads its own consumer on until it handed over everything
// before the first of them (handOver); then it closes its channel and
// goes on from the buffer, skipping what it handed over already. If its
// buffer overflows meanwhile (it spilled), it leaves the index and tries
// again later, still on its own consumer.
//
// A subscription on the live feed whose buffer overflows, from Subscribe
// or after a hand-over, spills the same way instead of ending with
// ErrOverflow: it leaves the index and reads on from the history, from
// the offset after the last it handed over, with a consumer of its own
// (fallBack), until it has caught up again. So no subscription ends for
// being slow while the history keeps what it has not read; one that fell
// further behind than that ends with an *OffsetError.
type subHistory struct {
	mux    *Mux
	stream string

	// stateMu serialises joining and leaving the live feed (the Stream
	// goroutine's) with the subscription's end (any goroutine's); it
	// guards the subscription's sess and acquired, the consumer, and ended.
	stateMu    sync.Mutex
	ended      bool
	conn       *Conn
	ch         *amqp.Channel // nil when it has no consumer of its own
	slot       bool          // it holds one of the Mux's replay tokens
	deliveries <-chan amqp.Delivery
	closed     chan *amqp.Error
	from       int64 // the first offset the consumer hands over; -1: any

	// Under the subscription's mu, the pump's and Stream's: pending while
	// in the index but still reading its own consumer; spilled when the
	// buffer overflowed (what it held is dropped; the history has it);
	// first is the offset of the first delivery offered, -1 before one.
	pending, spilled bool
	first            int64

	last      int64 // the last offset handed over (or skipped); Stream's
	replaying atomic.Bool
}

func newSubHistory(m *Mux) *subHistory {
	return &subHistory{mux: m, stream: m.cfg.History.Stream, from: -1, first: -1, last: -1}
}

// joinRetry is how long a replay that could not join the live feed (its
// buffer there overflowed while it caught up) reads on before it tries
// again.
const joinRetry = time.Second

var (
	// errJoined ends streamReplay when the subscription joined the live
	// feed.
	errJoined = errors.New("core: replay joined the live feed")
	// errSpilled ends streamLive when the subscription's buffer spilled.
	errSpilled = errors.New("core: subscription spilled its buffer")
)

// SubscribeFrom is Subscribe with a starting point in the Mux's history:
// the subscription gets the messages its keys match from start on, the
// history first and then the live messages, with no gap and no duplicate.
// It reads the history with a consumer of its own, at its client's pace
// (the broker sends at most Prefetch deliveries ahead of what the client
// took), then joins the Mux's one consumer (see subHistory).
//
// It fails with ErrHistoryOff when the Mux keeps no history, and with an
// *OffsetError when start is outside the history.
func (m *Mux) SubscribeFrom(ctx context.Context, keys []string, start StreamStart) (*MuxSubscription, error) {
	h := m.cfg.History
	if h == nil {
		return nil, ErrHistoryOff
	}
	for _, k := range keys {
		if err := CheckScope(ctx, KeySubscribe, m.cfg.Exchange, k); err != nil {
			return nil, err
		}
	}
	if err := m.takeReplay(ctx); err != nil {
		return nil, err
	}
	sub := &MuxSubscription{
		h:     newSubHistory(m),
		keys:  keys,
		ready: make(chan struct{}, 1),
		mt:    m.mt,
		tc:    m.tc,
		name:  m.cfg.Exchange,
	}
	sub.h.slot = true
	conn, err := m.connection()
	if err == nil {
		var arg any
		var from int64
		if arg, from, err = start.consumeArgument(conn, h.Stream, time.Now()); err == nil {
			err = sub.h.consume(conn, keys, arg, from)
		}
	}
	if err != nil {
		sub.h.closeReplay() // gives the token back
		return nil, err
	}
	sub.h.replaying.Store(true)
	sub.ctx, sub.cancel = context.WithCancelCause(ctx)
	if m.mt.on {
		sub.label = m.mt.name(m.cfg.Exchange)
		m.mt.SubscriptionOpened(sub.label, "")
	}
	return sub, nil
}

// takeReplay waits for one of the Mux's replay tokens (HistoryConfig.Replays),
// or for ctx.
func (m *Mux) takeReplay(ctx context.Context) error {
	select {
	case m.replays <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// connection is the Mux's connection, if it has one that is not blocked.
func (m *Mux) connection() (*Conn, error) {
	m.mu.Lock()
	conn := m.conn
	m.mu.Unlock()
	if conn == nil || conn.IsClosed() {
		return nil, ErrNotConnected
	}
	if conn.Blocked() {
		return nil, ErrBlocked
	}
	return conn, nil
}

// consume opens the subscription's own consumer of the stream, from arg
// (an x-stream-offset), handing over from offset from on.
func (h *subHistory) consume(conn *Conn, keys []string, arg any, from int64) error {
	m := h.mux
	ch, err := conn.Channel()
	if err != nil {
		return ChannelError("open channel", err)
	}
	fail := func(err error) error {
		_ = ch.Close()
		return err
	}
	if m.cfg.Kind == "direct" {
		// The keys' history starts now if no subscription asked for them
		// before; binding keys the stream has is harmless.
		for _, k := range keys {
			if err := ch.QueueBind(h.stream, k, m.cfg.Exchange, false, nil); err != nil {
				return fail(ChannelError(fmt.Sprintf("bind stream %q to %q with %q", h.stream, m.cfg.Exchange, k), err))
			}
		}
	}
	if err := ch.Qos(m.cfg.Prefetch, 0, false); err != nil {
		return fail(ChannelError("set prefetch", err))
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	deliveries, err := ch.Consume(h.stream, "", false, false, false, false, amqp.Table{"x-stream-offset": arg})
	if err != nil {
		return fail(ChannelError(fmt.Sprintf("consume %q", h.stream), err))
	}
	h.conn, h.ch, h.deliveries, h.closed, h.from = conn, ch, deliveries, closed, from
	if from-1 > h.last {
		// What comes before the start counts as handed over: the live
		// feed skips it too (a delivery of it may reach the buffer late,
		// after the subscription joined).
		h.last = from - 1
	}
	return nil
}

// closeReplay closes the subscription's own consumer, if it has one, and
// gives its replay token back; under stateMu.
func (h *subHistory) closeReplay() {
	if h.ch != nil {
		_ = h.ch.Close()
		h.ch = nil
	}
	if h.slot {
		<-h.mux.replays
		h.slot = false
	}
}

// Replaying reports whether the subscription reads the history with a
// consumer of its own (it has not joined the live feed, or fell back).
func (m *MuxSubscription) Replaying() bool { return m.h != nil && m.h.replaying.Load() }

// matches reports whether one of the subscription's keys matches key.
func (m *MuxSubscription) matches(kind, key string) bool {
	for _, k := range m.keys {
		if MatchKey(kind, k, key) {
			return true
		}
	}
	return false
}

// join puts the subscription in the index of the Mux's session, pending:
// the live deliveries collect in its buffer while its own consumer
// catches up. It reports whether it did.
func (m *MuxSubscription) join() bool {
	h := m.h
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	if h.ended {
		return false
	}
	s, err := h.mux.session()
	if err != nil {
		return false
	}
	m.sess = s
	m.mu.Lock()
	h.pending, h.spilled = true, false
	m.mu.Unlock()
	if !s.add(m) {
		m.sess = nil
		m.mu.Lock()
		h.pending = false
		m.mu.Unlock()
		return false
	}
	for _, k := range m.keys {
		if err := s.acquire(k); err != nil {
			m.leave()
			return false
		}
		m.acquired++
	}
	if err := s.enter(m); err != nil {
		m.leave()
		return false
	}
	return true
}

// leave takes the subscription out of the index and empties its buffer;
// under stateMu.
func (m *MuxSubscription) leave() {
	h := m.h
	if m.sess != nil {
		m.sess.remove(m)
		m.sess = nil
	}
	m.acquired = 0
	m.mu.Lock()
	m.buf = nil
	h.pending, h.spilled = false, false
	m.mu.Unlock()
	select {
	case <-m.ready:
	default:
	}
}

// state is the hand-over's state: pending, and spilled.
func (m *MuxSubscription) state() (pending, spilled bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.h.pending, m.h.spilled
}

// handOver ends a pending subscription's hand-over when its own consumer
// reached off, the offset of the first live delivery in its buffer or a
// later one (everything before off was handed over): from then on, the
// buffer holds every delivery its keys match. It reports false, changing
// nothing, while the buffer holds no live delivery yet, or lost them
// (spilled).
func (m *MuxSubscription) handOver(off int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.h
	if !h.pending || h.spilled || len(m.buf) == 0 {
		return false
	}
	if first, ok := StreamOffset(m.buf[0]); !ok || off < first {
		return false
	}
	h.pending = false
	return true
}

// fallBack takes a subscription whose buffer spilled off the live feed
// and onto a consumer of its own, from the offset after the last it
// handed over.
func (m *MuxSubscription) fallBack() error {
	h := m.h
	if err := h.mux.takeReplay(m.ctx); err != nil {
		return err
	}
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	h.slot = true
	if h.ended {
		h.closeReplay()
		return context.Cause(m.ctx)
	}
	m.mu.Lock()
	from := h.first // nothing handed over yet: where it started
	m.mu.Unlock()
	if h.last >= 0 {
		from = h.last + 1
	}
	m.leave()
	conn, err := h.mux.connection()
	if err != nil {
		h.closeReplay()
		return err
	}
	arg, from, err := StartOffset(from).consumeArgument(conn, h.stream, time.Now())
	if err != nil {
		h.closeReplay()
		return fmt.Errorf("core: the subscription fell behind and cannot read on from the history: %w", err)
	}
	if err := h.consume(conn, m.keys, arg, from); err != nil {
		h.closeReplay()
		return err
	}
	h.replaying.Store(true)
	return nil
}

// streamReplay is Stream while the subscription reads its own consumer: it
// hands each delivery its keys match, from the start offset on, to send,
// and acknowledges it after (multiple, whenever no further delivery waits
// and at least every Prefetch/4). When the consumer has nothing more for
// now, the subscription joins the live feed (or tries again every
// joinRetry); once it handed over everything before the first live
// delivery, it returns errJoined. Otherwise it returns why the
// subscription ended.
func (m *MuxSubscription) streamReplay(send func(*amqp.Delivery) error) error {
	h := m.h
	h.stateMu.Lock()
	conn, ch, deliveries, closed, from := h.conn, h.ch, h.deliveries, h.closed, h.from
	h.stateMu.Unlock()
	if ch == nil {
		return context.Cause(m.ctx) // it ended meanwhile
	}
	kind := h.mux.cfg.Kind
	acks := newAcker(ch, h.mux.cfg.Prefetch/4, nil)
	var retry time.Time
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		default:
			acks.flush()
			// Caught up with what the broker sent: join the live feed.
			pending, spilled := m.state()
			if spilled {
				h.stateMu.Lock()
				m.leave()
				h.stateMu.Unlock()
				pending, retry = false, time.Now().Add(joinRetry)
			}
			if !pending && time.Now().After(retry) {
				if pending = m.join(); !pending {
					retry = time.Now().Add(joinRetry)
				}
			}
			// Not in the index yet: try again at retry, whether or not a
			// delivery comes meanwhile, so that a replay does not hold
			// its channel and token until the next live message. In the
			// index: the first live delivery may reach the buffer after
			// this consumer handed over the same message, and then it
			// has everything before it; the hand-over need not wait for
			// the next message.
			var again <-chan time.Time
			var live <-chan struct{}
			if pending {
				live = m.ready
			} else {
				again = time.After(time.Until(retry))
			}
			select {
			case d, ok = <-deliveries:
			case <-again:
				continue
			case <-live:
				if m.handOver(h.last + 1) {
					return errJoined
				}
				continue
			case <-m.ctx.Done():
				return context.Cause(m.ctx)
			}
		}
		if !ok {
			m.reason.CompareAndSwap(nil, CloseLost)
			return consumerLost(conn, closed, "subscription's")
		}
		if m.ctx.Err() != nil {
			return context.Cause(m.ctx)
		}
		off, hasOffset := StreamOffset(&d)
		if hasOffset && m.handOver(off) {
			return errJoined // the live feed has d, and all after it
		}
		// The broker starts at the chunk that holds the start offset:
		// skip what comes before it, and what was handed over already.
		if !hasOffset || off >= from && off > h.last {
			if m.matches(kind, d.RoutingKey) {
				if err := m.send(send, &d); err != nil {
					return err
				}
			}
			if hasOffset {
				h.last = off
			}
		}
		acks.take(d.DeliveryTag)
	}
}
