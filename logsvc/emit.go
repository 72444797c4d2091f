package logsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// publisher is the confirm-mode channel every emit of one connection
// publishes on. amqp091-go serialises publishes on a channel and matches
// confirms to them, so it is shared by all callers. A channel exception
// (say, 404 because someone deleted an exchange) kills the channel; the next
// publish opens a new one and declares the exchanges again.
type publisher struct {
	conn *amqp.Connection
	cfg  Config
	log  *slog.Logger

	mu     sync.Mutex
	ch     *amqp.Channel
	closed bool
}

func newPublisher(conn *amqp.Connection, cfg Config, log *slog.Logger) (*publisher, error) {
	p := &publisher{conn: conn, cfg: cfg, log: log}
	ch, err := p.open()
	if err != nil {
		return nil, err
	}
	p.ch = ch
	return p, nil
}

// open opens a channel in confirm mode.
func (p *publisher) open() (*amqp.Channel, error) {
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publishing channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	return ch, nil
}

// channel returns the publishing channel, replacing a dead one.
func (p *publisher) channel() (*amqp.Channel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrBrokerLost
	}
	if !p.ch.IsClosed() {
		return p.ch, nil
	}
	if p.conn.IsClosed() {
		return nil, ErrBrokerLost
	}
	p.log.Warn("logsvc: publishing channel closed; opening a new one")
	if err := declareExchanges(p.conn, p.cfg.exchanges(), p.log); err != nil {
		return nil, err
	}
	ch, err := p.open()
	if err != nil {
		return nil, err
	}
	p.ch = ch
	return ch, nil
}

func (p *publisher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	_ = p.ch.Close()
}

// publish publishes one message and returns its pending confirm and the
// channel it went out on.
func (p *publisher) publish(ctx context.Context, ex exchange, key, body string) (*amqp.DeferredConfirmation, *amqp.Channel, error) {
	ch, err := p.channel()
	if err != nil {
		return nil, nil, err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, ex.name, key, false, false, amqp.Publishing{
		Body:      []byte(body),
		Timestamp: time.Now(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("publish to %q: %w", ex.name, err)
	}
	return dc, ch, nil
}

// errNack is a negative publisher confirm.
var errNack = errors.New("logsvc: broker did not take the message (nack); it may be retried")

// waitConfirm waits for one publisher confirm, for at most
// cfg.ConfirmTimeout.
func (s *Service) waitConfirm(ctx context.Context, dc *amqp.DeferredConfirmation, ch *amqp.Channel) error {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ConfirmTimeout)
	defer cancel()
	ack, err := dc.WaitContext(wctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return status.Errorf(codes.Unavailable, "logsvc: no publisher confirm from the broker within %v (is it blocking publishers?)", s.cfg.ConfirmTimeout)
	case ack:
		return nil
	case ch.IsClosed():
		// amqp091-go nacks every pending confirm when the channel closes.
		return fmt.Errorf("%w before the broker confirmed the message", ErrBrokerLost)
	}
	return errNack
}

// EmitLog publishes one log message and answers once the broker confirmed
// it.
func (s *Service) EmitLog(ctx context.Context, req *warrenv1.EmitLogRequest) (*warrenv1.EmitLogResponse, error) {
	ex, err := s.cfg.exchange(req.GetExchange())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := checkRoutingKey(req.GetRoutingKey()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if s.blocked.Load() {
		return nil, errBlocked
	}
	sess, err := s.current()
	if err != nil {
		return nil, err
	}
	dc, ch, err := sess.pub.publish(ctx, ex, req.GetRoutingKey(), req.GetBody())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.waitConfirm(ctx, dc, ch); err != nil {
		return nil, toStatus(err)
	}
	return &warrenv1.EmitLogResponse{}, nil
}

// EmitLogs publishes a stream of log messages, keeping up to
// cfg.EmitWindow of them unconfirmed at a time, and answers with the count
// once every one was confirmed. The first invalid or failed message ends
// the call; the error says how many were confirmed before it.
func (s *Service) EmitLogs(stream grpc.ClientStreamingServer[warrenv1.EmitLogsRequest, warrenv1.EmitLogsResponse]) error {
	ctx := stream.Context()
	type pending struct {
		dc *amqp.DeferredConfirmation
		ch *amqp.Channel
	}
	// window is a ring of unconfirmed messages, oldest at head.
	window := make([]pending, s.cfg.EmitWindow)
	head, n := 0, 0
	var confirmed uint64
	fail := func(err error) error {
		st := status.Convert(toStatus(err))
		return status.Errorf(st.Code(), "%s (%d messages confirmed before this)", st.Message(), confirmed)
	}
	waitOldest := func() error {
		p := window[head]
		window[head] = pending{}
		head = (head + 1) % len(window)
		n--
		if err := s.waitConfirm(ctx, p.dc, p.ch); err != nil {
			return err
		}
		confirmed++
		return nil
	}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		ex, err := s.cfg.exchange(req.GetExchange())
		if err == nil {
			err = checkRoutingKey(req.GetRoutingKey())
		}
		if err != nil {
			return fail(status.Error(codes.InvalidArgument, err.Error()))
		}
		if s.blocked.Load() {
			return fail(errBlocked)
		}
		sess, err := s.current()
		if err != nil {
			return fail(err)
		}
		if n == len(window) {
			if err := waitOldest(); err != nil {
				return fail(err)
			}
		}
		dc, ch, err := sess.pub.publish(ctx, ex, req.GetRoutingKey(), req.GetBody())
		if err != nil {
			return fail(err)
		}
		window[(head+n)%len(window)] = pending{dc, ch}
		n++
	}
	for n > 0 {
		if err := waitOldest(); err != nil {
			return fail(err)
		}
	}
	return stream.SendAndClose(&warrenv1.EmitLogsResponse{Count: confirmed})
}
