package logsvc

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// QueueHeader is the response header SubscribeLogs sends once the
// subscription's queue is declared, bound and consumed from. Its value is
// the server-named queue. A client that must not miss messages emitted
// right after it subscribed waits for the header (stream.Header()).
const QueueHeader = "warren-queue"

// subscription is one SubscribeLogs call as Shutdown and Disconnected see
// it.
type subscription struct {
	cancel context.CancelCauseFunc
}

// register adds sub to the live subscriptions and counts its AMQP work on
// the current session.
func (s *Service) register(sub *subscription) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, toStatus(ErrShutdown)
	}
	if s.sess == nil {
		return nil, toStatus(ErrNoBroker)
	}
	s.subs[sub] = struct{}{}
	s.sess.work.Add(1)
	return s.sess, nil
}

func (s *Service) unregister(sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, sub)
}

// SubscribeLogs declares an exclusive, auto-delete, server-named queue
// bound to the exchange with the request's keys, sends the QueueHeader, and
// streams every message routed to the queue until the client cancels, the
// queue overflows (RESOURCE_EXHAUSTED), the broker connection is lost or
// the Service shuts down (UNAVAILABLE). When it returns, the consumer and
// the queue are gone from the broker.
//
// Two goroutines serve a subscription: the handler's, the only one that
// calls stream.Send, and a pump that owns the AMQP channel: it moves
// deliveries into a buffer of cfg.StreamBuffer messages, acks them, and
// deletes the queue and closes the channel when the subscription ends, even
// while the handler is blocked in Send.
func (s *Service) SubscribeLogs(req *warrenv1.SubscribeLogsRequest, stream grpc.ServerStreamingServer[warrenv1.SubscribeLogsResponse]) error {
	ex, err := s.cfg.exchange(req.GetExchange())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	keys, err := s.cfg.bindingKeys(ex, req.GetBindingKeys())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	sub := &subscription{cancel: cancel}
	sess, err := s.register(sub)
	if err != nil {
		return err
	}
	defer s.unregister(sub)

	ch, queue, deliveries, err := s.consume(sess.conn, ex, keys)
	if err != nil {
		sess.work.Done()
		return toStatus(fmt.Errorf("subscribe: %w", err))
	}
	buf := make(chan *warrenv1.SubscribeLogsResponse, s.cfg.StreamBuffer)
	p := &pump{cfg: s.cfg, conn: sess.conn, ch: ch, queue: queue, deliveries: deliveries, buf: buf, cancel: cancel}
	go func() {
		defer sess.work.Done()
		p.run(ctx)
	}()
	defer func() {
		cancel(nil)
		for range buf { // the pump closes buf when it is done
		}
	}()

	if err := stream.SendHeader(metadata.Pairs(QueueHeader, queue)); err != nil {
		return err
	}
	s.log.Debug("logsvc: subscribed", "exchange", ex.name, "keys", keys, "queue", queue)
	for {
		if ctx.Err() != nil {
			return endStatus(ctx)
		}
		select {
		case <-ctx.Done():
			return endStatus(ctx)
		case m, ok := <-buf:
			if !ok {
				// The pump ended, and cancelled ctx with its reason.
				return endStatus(ctx)
			}
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

// consume opens the subscription's channel, declares and binds its queue
// and starts consuming from it.
func (s *Service) consume(conn *amqp.Connection, ex exchange, keys []string) (ch *amqp.Channel, queue string, deliveries <-chan amqp.Delivery, err error) {
	ch, err = conn.Channel()
	if err != nil {
		return nil, "", nil, fmt.Errorf("open channel: %w", err)
	}
	defer func() {
		if err != nil {
			_ = ch.Close()
		}
	}()
	if err = ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return nil, "", nil, fmt.Errorf("set prefetch: %w", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{
		"x-max-length": int64(s.cfg.MaxLength),
		"x-overflow":   s.cfg.Overflow,
	})
	if err != nil {
		return nil, "", nil, fmt.Errorf("declare queue: %w", err)
	}
	for _, k := range keys {
		if err = ch.QueueBind(q.Name, k, ex.name, false, nil); err != nil {
			return nil, "", nil, fmt.Errorf("bind queue to %q with %q: %w", ex.name, k, err)
		}
	}
	deliveries, err = ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		return nil, "", nil, fmt.Errorf("consume: %w", err)
	}
	return ch, q.Name, deliveries, nil
}

// ErrOverflow ends a subscription whose queue reached its length limit
// because its client read too slowly. It reaches the client as
// RESOURCE_EXHAUSTED.
var ErrOverflow = errors.New("logsvc: subscription too slow: its queue reached its length limit and the broker dropped messages")

// pump owns a subscription's AMQP channel.
type pump struct {
	cfg        Config
	conn       *amqp.Connection
	ch         *amqp.Channel
	queue      string
	deliveries <-chan amqp.Delivery
	buf        chan<- *warrenv1.SubscribeLogsResponse
	cancel     context.CancelCauseFunc

	timer     *time.Timer // overflow checks while buf is full
	lastCheck time.Time
}

// run moves deliveries into buf until ctx ends or the channel closes,
// then deletes the queue, closes the channel and closes buf. It cancels
// the subscription with the reason it stopped when that was not ctx.
//
// Deliveries are acked (multiple) once buffered, in batches of up to half
// the prefetch and whenever no more are waiting. When buf is full run
// waits, so the backlog stays in the broker's queue; while it waits, and
// at most every cfg.OverflowCheck while deliveries flow, it asks the
// broker how long the queue is, and ends the subscription with ErrOverflow
// once it reached cfg.MaxLength.
func (p *pump) run(ctx context.Context) {
	defer close(p.buf)
	defer func() {
		_, _ = p.ch.QueueDelete(p.queue, false, false, false)
		_ = p.ch.Close()
	}()
	closed := p.ch.NotifyClose(make(chan *amqp.Error, 1))
	p.timer = time.NewTimer(time.Hour)
	p.timer.Stop()
	defer p.timer.Stop()
	p.lastCheck = time.Now()
	batch := max(1, p.cfg.Prefetch/2)
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return
		case d, ok = <-p.deliveries:
		}
		unacked, last := 0, uint64(0)
		for ok {
			if !p.put(ctx, response(d)) {
				return
			}
			unacked, last = unacked+1, d.DeliveryTag
			if unacked >= batch {
				_ = p.ch.Ack(last, true)
				unacked = 0
			}
			select {
			case d, ok = <-p.deliveries:
				if !ok {
					unacked = 0 // the channel is gone; so are the acks
				}
				continue
			default:
			}
			break
		}
		if unacked > 0 {
			_ = p.ch.Ack(last, true)
		}
		if !ok {
			p.cancel(p.lost(closed))
			return
		}
		if time.Since(p.lastCheck) >= p.cfg.OverflowCheck && p.overflowing() {
			return
		}
	}
}

// put puts m into buf, waiting while it is full. It returns false when the
// subscription must end.
func (p *pump) put(ctx context.Context, m *warrenv1.SubscribeLogsResponse) bool {
	select {
	case p.buf <- m:
		return true
	default:
	}
	p.timer.Reset(p.cfg.OverflowCheck)
	defer p.timer.Stop()
	for {
		select {
		case p.buf <- m:
			return true
		case <-ctx.Done():
			return false
		case <-p.timer.C:
			if p.overflowing() {
				return false
			}
			p.timer.Reset(p.cfg.OverflowCheck)
		}
	}
}

// overflowing asks the broker for the queue's length (a passive declare on
// the subscription's own channel) and cancels the subscription with
// ErrOverflow when it reached cfg.MaxLength.
func (p *pump) overflowing() bool {
	p.lastCheck = time.Now()
	q, err := p.ch.QueueDeclarePassive(p.queue, false, true, true, false, nil)
	if err != nil {
		// The channel is gone; the deliveries channel closes next.
		return false
	}
	if q.Messages < p.cfg.MaxLength {
		return false
	}
	p.cancel(ErrOverflow)
	return true
}

// lost is why the channel closed under the subscription: the connection
// was lost, or the broker closed the channel (say, someone deleted the
// queue).
func (p *pump) lost(closed <-chan *amqp.Error) error {
	if p.conn.IsClosed() {
		return ErrBrokerLost
	}
	select {
	case e, ok := <-closed:
		if ok && e != nil {
			return fmt.Errorf("logsvc: the broker closed the subscription: %w", e)
		}
	default:
	}
	return errors.New("logsvc: the broker closed the subscription")
}

// response converts a delivery into a stream message.
func response(d amqp.Delivery) *warrenv1.SubscribeLogsResponse {
	m := &warrenv1.SubscribeLogsResponse{RoutingKey: d.RoutingKey}
	if utf8.Valid(d.Body) {
		m.Body = string(d.Body)
	} else {
		m.RawBody = d.Body
	}
	t := d.Timestamp
	if t.IsZero() {
		t = time.Now()
	}
	m.Time = timestamppb.New(t)
	return m
}

// endStatus is the status of a subscription whose context ended: the
// cause Shutdown, Disconnected or the pump gave, or the client's cancel.
func endStatus(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
		return toStatus(cause)
	}
	return toStatus(ctx.Err())
}
