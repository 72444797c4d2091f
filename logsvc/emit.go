package logsvc

import (
	"context"
	"fmt"
	"io"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// message is the publishing of one log message, as emit_log.py publishes
// it (not mandatory: an exchange with no queue bound drops it), stamped
// with the time it was emitted.
func message(ex exchange, key, body string) *core.Message {
	return &core.Message{
		Exchange:   ex.name,
		RoutingKey: key,
		Publishing: amqp.Publishing{Body: []byte(body), Timestamp: time.Now()},
	}
}

// EmitLog publishes one log message and answers once the broker confirmed
// it. When the publishing failed because someone deleted the exchange, the
// exchanges are declared again and the message is published once more.
func (s *Service) EmitLog(ctx context.Context, req *warrenv1.EmitLogRequest) (*warrenv1.EmitLogResponse, error) {
	ex, err := s.cfg.exchange(req.GetExchange())
	if err != nil {
		return nil, err
	}
	if err := core.CheckRoutingKey(req.GetRoutingKey()); err != nil {
		return nil, err
	}
	m := message(ex, req.GetRoutingKey(), req.GetBody())
	gen := s.ex.generation()
	err = s.pub.Publish(ctx, m)
	if err != nil && s.ex.repair(ex, gen, err) {
		err = s.pub.Publish(ctx, m)
	}
	if err != nil {
		return nil, fmt.Errorf("publish to %q: %w", ex.name, err)
	}
	return &warrenv1.EmitLogResponse{}, nil
}

// EmitLogs publishes a stream of log messages, keeping up to
// cfg.EmitWindow of them unconfirmed at a time, and answers with the count
// once every one was confirmed. The first invalid or failed message ends
// the call; the error says how many were confirmed before it (for an
// invalid message, or one that could not be published, after waiting for
// the confirms of those before it, so the count is exact). A failure
// caused by a deleted exchange is not retried (the messages after it in
// the window may have gone out), but the exchanges are declared again for
// the calls that follow.
func (s *Service) EmitLogs(stream grpc.ClientStreamingServer[warrenv1.EmitLogsRequest, warrenv1.EmitLogsResponse]) error {
	ctx := stream.Context()
	type pending struct {
		c  *core.Confirmation
		ex warrenv1.LogExchange // valid: cfg.exchange accepted it
	}
	// window is a ring of unconfirmed messages, oldest at head.
	window := make([]pending, s.cfg.EmitWindow)
	head, n := 0, 0
	var confirmed uint64
	gen := s.ex.generation()
	fail := func(ex exchange, err error) error {
		s.ex.repair(ex, gen, err)
		return fmt.Errorf("%w (%d messages confirmed before this)", err, confirmed)
	}
	waitOldest := func() error {
		p := window[head]
		window[head] = pending{}
		head = (head + 1) % len(window)
		n--
		if err := p.c.Wait(ctx); err != nil {
			ex, _ := s.cfg.exchange(p.ex)
			return fail(ex, fmt.Errorf("publish to %q: %w", ex.name, err))
		}
		confirmed++
		return nil
	}
	// failAfter fails the call with err, a failure of the newest message,
	// once the confirms of the messages before it are in, so that the
	// count is exact (or the first of those failures, if one failed).
	failAfter := func(ex exchange, err error) error {
		for n > 0 {
			if werr := waitOldest(); werr != nil {
				return werr
			}
		}
		return fail(ex, err)
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
			err = core.CheckRoutingKey(req.GetRoutingKey())
		}
		if err != nil {
			return failAfter(ex, err)
		}
		if n == len(window) {
			if err := waitOldest(); err != nil {
				return err
			}
		}
		c, err := s.pub.PublishDeferred(ctx, message(ex, req.GetRoutingKey(), req.GetBody()))
		if err != nil {
			return failAfter(ex, fmt.Errorf("publish to %q: %w", ex.name, err))
		}
		window[(head+n)%len(window)] = pending{c, req.GetExchange()}
		n++
	}
	for n > 0 {
		if err := waitOldest(); err != nil {
			return err
		}
	}
	return stream.SendAndClose(&warrenv1.EmitLogsResponse{Count: confirmed})
}
