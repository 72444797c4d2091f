package core

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
)

// Message is one publishing and where it goes.
type Message struct {
	// Exchange is the exchange to publish to; "" is the default exchange,
	// which routes to the queue named by RoutingKey.
	Exchange string
	// RoutingKey routes the message (at most 255 bytes: longer keys are
	// the caller's mistake to catch before publishing).
	RoutingKey string
	// Mandatory asks the broker to return the message when no queue takes
	// it; Publish then fails with a *ReturnError (errors.Is ErrNoQueue).
	Mandatory bool
	amqp.Publishing
}

// PublisherConfig configures a Publisher. The zero value works.
type PublisherConfig struct {
	// Channels is the count of confirm-mode channels; concurrent
	// publishings pipeline on each. Default: 4.
	Channels int
	// Timeout bounds the wait for a confirm when the caller's context has
	// no deadline, so no wait is ever unbounded. Default: 10s.
	Timeout time.Duration
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	if c.Channels <= 0 {
		c.Channels = 4
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Publisher publishes with publisher confirms on a pool of channels of its
// Supervisor's connection.
//
// Concurrency: any number of goroutines may publish at once; each waits
// only for its own confirm. Publish fails at once, without waiting, when
// there is no connection (ErrNotConnected) or the broker blocks publishing
// (ErrBlocked, read from the connection, so it is clear on a new one).
// Every wait ends by the caller's deadline or the Timeout. A nack is
// ErrNacked, a return ReturnError, a channel or connection closed before
// the confirm ErrConnectionLost: never a success.
type Publisher struct {
	cfg  PublisherConfig
	sess atomic.Pointer[pubSession]
	mt   *meter
	tc   *tracer
}

type pubSession struct {
	conn    *Conn
	pool    *chanPool
	returns sync.Map // *amqp.Channel → *returnBook
}

// NewPublisher returns a Publisher on sup's connection; it adds itself to
// sup, so it must be built before sup runs.
func NewPublisher(sup *Supervisor, cfg PublisherConfig) *Publisher {
	p := &Publisher{cfg: cfg.withDefaults(), mt: sup.mt, tc: sup.tc}
	sup.Add(p)
	return p
}

// Connected opens the confirm-mode channels (Component).
func (p *Publisher) Connected(_ context.Context, conn *Conn) error {
	s := &pubSession{conn: conn}
	pool, err := newChanPool(conn, p.cfg.Channels, func(ch *amqp.Channel, wg *sync.WaitGroup) error {
		if err := ch.Confirm(false); err != nil {
			return ChannelError("enter confirm mode", err)
		}
		b := newReturnBook(ch, p.mt)
		s.returns.Store(ch, b)
		wg.Go(func() {
			defer s.returns.Delete(ch) // the channel closed; a new one replaces it
			b.run()
		})
		return nil
	})
	if err != nil {
		return err
	}
	s.pool = pool
	p.sess.Store(s)
	return nil
}

// Disconnected fails new publishings with ErrNotConnected and waits for
// the channels' goroutines (Component). Publishings waiting for a confirm
// fail with ErrConnectionLost as their channels close.
func (p *Publisher) Disconnected(error) {
	if s := p.sess.Swap(nil); s != nil {
		s.pool.wait()
	}
}

// Ready reports whether a publishing would be sent now: nil, or why not
// (ErrNotConnected, ErrBlocked). A call that must touch the broker before
// it publishes (a declaration, a passive declare) checks it first: a
// blocked connection's frames wait in the broker until the alarm ends.
func (p *Publisher) Ready() error {
	s := p.sess.Load()
	switch {
	case s == nil:
		return ErrNotConnected
	case s.conn.Blocked():
		return ErrBlocked
	}
	return nil
}

// Publish publishes m and returns once the broker confirmed it.
func (p *Publisher) Publish(ctx context.Context, m *Message) error {
	c, err := p.PublishDeferred(ctx, m)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// PublishDeferred publishes m and returns without waiting for the confirm:
// call Wait on the result. Callers that keep many publishings in flight
// (a client stream) use it to pipeline.
func (p *Publisher) PublishDeferred(ctx context.Context, m *Message) (*Confirmation, error) {
	if err := CheckScope(ctx, KeyEmit, m.Exchange, m.RoutingKey); err != nil {
		return nil, err
	}
	s := p.sess.Load()
	if s == nil {
		return nil, ErrNotConnected
	}
	if s.conn.Blocked() {
		return nil, ErrBlocked
	}
	ch, err := s.pool.get()
	if err != nil {
		return nil, err
	}
	pub := m.Publishing
	var span trace.Span
	if p.tc.on {
		span = p.tc.send(ctx, "publish", m.Exchange, m.RoutingKey, &pub)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, m.Exchange, m.RoutingKey, m.Mandatory, false, pub)
	if err != nil {
		err = ChannelError("publish", err)
		end(span, err)
		return nil, err
	}
	v, _ := s.returns.Load(ch)
	book, _ := v.(*returnBook)
	if book == nil {
		// The channel closed as we published: its fate is unknown, so
		// do not wait for a confirm that cannot come.
		err := fmt.Errorf("channel closed while publishing: %w", ErrConnectionLost)
		end(span, err)
		return nil, err
	}
	c := &Confirmation{dc: dc, ch: ch, conn: s.conn, timeout: p.cfg.Timeout, book: book, mt: p.mt, sent: p.mt.now(), span: span}
	if p.mt.on {
		c.dest[0], c.dest[1] = p.mt.dest(m.Exchange, m.RoutingKey)
		p.mt.Published(c.dest[0], c.dest[1])
	}
	if m.Mandatory {
		c.key = returnKey(m.Exchange, m.RoutingKey, m.MessageId, m.CorrelationId)
	}
	return c, nil
}

// Confirmation is a publishing waiting for the broker's confirm.
type Confirmation struct {
	dc      *amqp.DeferredConfirmation
	ch      *amqp.Channel
	conn    *Conn
	timeout time.Duration
	book    *returnBook
	key     string // mandatory publishings only
	mt      *meter
	sent    time.Time
	dest    [2]string  // exchange and queue labels
	span    trace.Span // the publishing's, ended by Wait; nil when not tracing
}

// Wait waits for the confirm until ctx ends, or for the Publisher's
// Timeout when ctx has no deadline. It returns nil only for a publishing
// the broker took: confirmed (acked) and, if mandatory, not returned.
func (c *Confirmation) Wait(ctx context.Context) error {
	err := c.wait(ctx)
	end(c.span, err)
	return err
}

func (c *Confirmation) wait(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	ack, err := c.dc.WaitContext(ctx)
	c.mt.confirmed(c.dest, c.sent, ack, err, c.ch)
	switch {
	case err != nil:
		return fmt.Errorf("core: no publisher confirm: %w", err)
	case !ack && c.ch.IsClosed():
		// amqp091-go nacks the pending confirms of a closing channel,
		// after it told the channel's close listeners why.
		if reason := c.book.closeReason(); reason != nil && !c.conn.IsClosed() {
			return fmt.Errorf("core: the broker closed the channel before the publisher confirm: %w", reason)
		}
		return fmt.Errorf("channel closed before the publisher confirm: %w", ErrConnectionLost)
	case !ack:
		return ErrNacked
	case c.key == "":
		return nil
	}
	ret, err := c.book.returned(c.key)
	if err != nil {
		return err
	}
	if ret != nil {
		return &ReturnError{Exchange: ret.Exchange, RoutingKey: ret.RoutingKey, Code: ret.ReplyCode, Text: ret.ReplyText}
	}
	return nil
}

// returnKey identifies a mandatory publishing in its channel's returns.
// Two publishings with one key go to the same place, so either both or
// neither come back.
func returnKey(exchange, key, messageID, correlationID string) string {
	return exchange + "\x00" + key + "\x00" + messageID + "\x00" + correlationID
}

// maxUnclaimedReturns bounds the returns recorded for publishings whose
// callers stopped waiting before their confirm.
const maxUnclaimedReturns = 4096

// returnBook owns the record of one channel's returned publishings.
//
// The broker sends basic.return before the basic.ack of the same
// publishing, and amqp091-go hands the return to the notification channel
// before it resolves the confirmation. So once a publisher saw its ack,
// its return (if any) is either in the notification buffer or already
// recorded; run answers a query only after draining the buffer, which
// makes the answer exact.
//
// It also keeps why the channel closed: amqp091-go sends a channel
// exception to the close listeners before it nacks the pending confirms,
// so a publishing nacked by the close finds the reason here.
type returnBook struct {
	returns chan amqp.Return
	queries chan returnQuery
	done    chan struct{} // closed when run returned

	closes chan *amqp.Error // buffered 1; written once, by amqp091-go
	once   sync.Once
	reason *amqp.Error

	mt *meter
}

type returnQuery struct {
	key   string
	reply chan *amqp.Return // buffered 1
}

func newReturnBook(ch *amqp.Channel, mt *meter) *returnBook {
	return &returnBook{
		mt:      mt,
		returns: ch.NotifyReturn(make(chan amqp.Return, 64)),
		queries: make(chan returnQuery),
		done:    make(chan struct{}),
		closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
	}
}

// closeReason is the exception that closed the channel, or nil.
func (b *returnBook) closeReason() *amqp.Error {
	b.once.Do(func() {
		select {
		case e := <-b.closes:
			b.reason = e
		default:
		}
	})
	return b.reason
}

// run records returns until the channel closes.
func (b *returnBook) run() {
	defer close(b.done)
	book := map[string][]amqp.Return{}
	record := func(r amqp.Return) {
		b.mt.returned(r.Exchange, r.RoutingKey)
		if len(book) >= maxUnclaimedReturns {
			clear(book)
		}
		k := returnKey(r.Exchange, r.RoutingKey, r.MessageId, r.CorrelationId)
		book[k] = append(book[k], r)
	}
	for {
		select {
		case r, ok := <-b.returns:
			if !ok {
				return
			}
			record(r)
		case q := <-b.queries:
		drain:
			for {
				select {
				case r, ok := <-b.returns:
					if !ok {
						break drain
					}
					record(r)
				default:
					break drain
				}
			}
			var ret *amqp.Return
			if rs := book[q.key]; len(rs) > 0 {
				ret = &rs[0]
				if len(rs) == 1 {
					delete(book, q.key)
				} else {
					book[q.key] = rs[1:]
				}
			}
			q.reply <- ret
		}
	}
}

// returned reports the return of a confirmed publishing, or nil.
func (b *returnBook) returned(key string) (*amqp.Return, error) {
	q := returnQuery{key: key, reply: make(chan *amqp.Return, 1)}
	select {
	case b.queries <- q:
		return <-q.reply, nil
	case <-b.done:
		// The channel closed: whether it was returned is unknown, so do
		// not claim success.
		return nil, fmt.Errorf("channel closed before the return was known: %w", ErrConnectionLost)
	}
}
