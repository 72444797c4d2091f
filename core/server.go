package core

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/internal/wire"
)

// A Handler answers one request. It is the worker side of Client.Call,
// shaped like net/http's: the request in, the reply or an error out.
//
// ctx carries the caller's deadline (from the request's deadline header)
// and ends when the Server stops or loses its connection. The Server sets
// the reply's correlation id. An error goes back to the caller as data:
// its gRPC code (a status error's, or the one Status maps it to) and
// message in the reply's error headers. A panic is answered as INTERNAL,
// and the Server keeps serving.
type Handler interface {
	ServeAMQP(ctx context.Context, req *amqp.Delivery) (amqp.Publishing, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, req *amqp.Delivery) (amqp.Publishing, error)

// ServeAMQP calls f(ctx, req).
func (f HandlerFunc) ServeAMQP(ctx context.Context, req *amqp.Delivery) (amqp.Publishing, error) {
	return f(ctx, req)
}

// A StreamHandler answers one request with a stream of replies: it calls
// send for each, in order, and returns the stream's status (nil: OK). ctx
// is as for a Handler. send fails once the channel is gone; the handler
// should then return.
type StreamHandler interface {
	ServeAMQPStream(ctx context.Context, req *amqp.Delivery, send func(amqp.Publishing) error) error
}

// StreamHandlerFunc adapts a function to a StreamHandler.
type StreamHandlerFunc func(ctx context.Context, req *amqp.Delivery, send func(amqp.Publishing) error) error

// ServeAMQPStream calls f(ctx, req, send).
func (f StreamHandlerFunc) ServeAMQPStream(ctx context.Context, req *amqp.Delivery, send func(amqp.Publishing) error) error {
	return f(ctx, req, send)
}

// ServerConfig configures a Server: the queue it consumes and how.
type ServerConfig = ConsumerConfig

// ServerStats counts what a Server did.
type ServerStats struct {
	// Served counts the replies published, error replies included.
	Served uint64
	// Rejected counts the requests rejected without a reply: no reply_to.
	Rejected uint64
	// Expired counts the requests skipped because their deadline had
	// passed.
	Expired uint64
	// Panics counts the handler panics answered as INTERNAL.
	Panics uint64
}

// Server is the RPC server, the worker side of the request/reply pattern:
// it consumes a request queue with manual acknowledgements and answers
// each request through its Handler.
//
// Every request with a reply_to gets a reply, an error reply when the
// Handler fails; a request without one is rejected (dead-lettered if the
// queue has a policy for it), and a request whose deadline has passed is
// acknowledged unanswered. A request is acknowledged only after its reply
// was published, so a worker that dies first hands it to another; only a
// redelivered request answered through direct reply-to is acknowledged
// before (directReplyTo says why).
//
// Concurrency: Concurrency goroutines per connection run the Handler;
// Shutdown stops consuming and waits for them. After Shutdown the Server
// consumes nothing more, even when its connection is lost and comes back.
type Server struct {
	*Consumer
	handler Handler       // a unary Server's
	stream  StreamHandler // a streaming Server's
	log     *slog.Logger
	queue   string

	served, rejected, expired, panics atomic.Uint64
}

// NewServer returns a Server on sup's connection whose Handler answers
// each request with one reply; it adds itself to sup, so it must be built
// before sup runs.
func NewServer(sup *Supervisor, cfg ServerConfig, h Handler) *Server {
	return newServer(sup, cfg, &Server{handler: h})
}

// NewStreamServer returns a Server whose StreamHandler answers each
// request with a stream of replies (Client.CallStream): each reply it
// sends is numbered (wire.HeaderStreamSeq), and when it returns a last
// reply ends the stream (wire.HeaderStreamEnd) with its error, if any,
// in the error headers.
func NewStreamServer(sup *Supervisor, cfg ServerConfig, h StreamHandler) *Server {
	return newServer(sup, cfg, &Server{stream: h})
}

func newServer(sup *Supervisor, cfg ServerConfig, s *Server) *Server {
	s.queue = cfg.Queue.Name
	s.Consumer = NewConsumer(sup, cfg, s.handle)
	s.log = s.Consumer.cfg.Logger
	return s
}

// Stats returns what the Server did so far.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Served: s.served.Load(), Rejected: s.rejected.Load(),
		Expired: s.expired.Load(), Panics: s.panics.Load(),
	}
}

// handle answers one request and acknowledges it.
func (s *Server) handle(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery) {
	if d.ReplyTo == "" {
		// Nobody to answer: drop it (or dead-letter it, if the queue has a
		// policy for that) instead of letting it cycle.
		s.rejected.Add(1)
		setCode(ctx, codes.InvalidArgument)
		s.log.Warn("core: request without reply_to rejected", "queue", s.queue,
			"correlation_id", d.CorrelationId, "body_bytes", len(d.Body))
		_ = d.Reject(false)
		return
	}
	if deadline, ok := wire.Deadline(d.Headers); ok {
		if time.Now().After(deadline) {
			// The caller gave up; the work would be wasted.
			s.expired.Add(1)
			s.mt.Expired(s.label)
			setCode(ctx, codes.DeadlineExceeded)
			_ = d.Ack(false)
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	r := &replier{ch: ch, d: d, ctx: context.WithoutCancel(ctx), tc: s.tc,
		early: d.Redelivered && strings.HasPrefix(d.ReplyTo, directReplyTo)}
	var last amqp.Publishing
	err := s.serve(d, func() error {
		if s.stream == nil {
			reply, err := s.handler.ServeAMQP(ctx, d)
			last = reply
			return err
		}
		last.Headers = amqp.Table{wire.HeaderStreamEnd: true}
		return s.stream.ServeAMQPStream(ctx, d, r.send)
	})
	SetOutcome(ctx, err)
	if r.err != nil {
		// A reply of the stream could not be published: the channel is
		// gone, and the broker requeues the request for another worker.
		s.log.Warn("core: publish reply", "queue", s.queue, "err", r.err)
		return
	}
	if err != nil {
		st := status.Convert(Status(err))
		s.log.Info("core: request failed", "queue", s.queue, "correlation_id", d.CorrelationId,
			"code", st.Code(), "err", st.Message())
		h := wire.StatusHeaders(st)
		if s.stream != nil {
			h[wire.HeaderStreamEnd] = true
		}
		last = amqp.Publishing{ContentType: wire.ContentTypeText, Headers: h, Body: []byte("error: " + st.Message())}
	}
	if err := r.publish(last); err != nil {
		s.log.Warn("core: publish reply", "queue", s.queue, "err", err)
		return
	}
	s.served.Add(1)
	if !r.acked {
		_ = d.Ack(false)
	}
}

// directReplyTo prefixes the reply_to of a request whose client consumes
// its replies with RabbitMQ's direct reply-to: the broker's encoding of
// the client's channel follows.
//
// RabbitMQ 3.10 closes the connection of whoever publishes to such a name
// that does not decode to a channel of a node it knows (INTERNAL_ERROR),
// so a request from a foreign client with a malformed one costs its
// worker the connection, and the broker hands it to the next worker. A
// request that comes back (redelivered) with a direct reply-to is so
// acknowledged before its first reply is published, not after: a poison
// request costs the workers two connections at most, not one every
// backoff, forever. Should the connection fail between the two, the
// reply is lost and the caller's deadline answers it; a request is
// redelivered only after a worker lost its connection or channel.
const directReplyTo = "amq.rabbitmq.reply-to."

// serve runs a handler, turning a panic into INTERNAL.
func (s *Server) serve(d *amqp.Delivery, run func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			s.log.Error("core: handler panicked", "queue", s.queue,
				"correlation_id", d.CorrelationId, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "worker: the handler panicked")
		}
	}()
	return run()
}

// replier publishes the replies to one request.
type replier struct {
	ch  *amqp.Channel
	d   *amqp.Delivery
	ctx context.Context
	tc  *tracer
	seq int64
	err error // the first failed publish of a stream's reply

	early bool // acknowledge the request before its first reply (directReplyTo)
	acked bool
}

// publish sends p to the request's reply_to with its correlation id, and
// the context of the request's span when tracing.
func (r *replier) publish(p amqp.Publishing) error {
	if r.early && !r.acked {
		r.acked = true
		_ = r.d.Ack(false)
	}
	p.CorrelationId = r.d.CorrelationId
	if r.tc.on {
		r.tc.inject(r.ctx, &p)
	}
	return r.ch.PublishWithContext(r.ctx, "", r.d.ReplyTo, false, false, p)
}

// send publishes one reply of a stream, numbered.
func (r *replier) send(p amqp.Publishing) error {
	if r.err != nil {
		return r.err
	}
	if p.Headers == nil {
		p.Headers = amqp.Table{}
	}
	p.Headers[wire.HeaderStreamSeq] = r.seq
	if err := r.publish(p); err != nil {
		r.err = ChannelError("publish a reply of the stream", err)
		return r.err
	}
	r.seq++
	return nil
}
