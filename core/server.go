package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
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

// ServerConfig configures a Server.
type ServerConfig struct {
	// Queue is the request queue, declared as it says on every connection
	// (one that exists with other arguments is used as it is). Its Name
	// is required.
	Queue QueueSpec
	// Prefetch is the count of unacknowledged requests the broker may
	// push to this Server at once. Default: 64.
	Prefetch int
	// Concurrency is the count of goroutines running the Handler.
	// Default: runtime.GOMAXPROCS(0).
	Concurrency int
	// Name prefixes the consumer tag, as the management UI shows it.
	// Default: "warren".
	Name string
	// Logger receives rejected requests, handler panics and failures.
	// Default: the Supervisor's.
	Logger *slog.Logger
}

func (c ServerConfig) withDefaults(sup *Supervisor) ServerConfig {
	if c.Prefetch <= 0 {
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
// was published, so a worker that dies first hands it to another.
//
// Concurrency: Concurrency goroutines per connection run the Handler;
// Shutdown stops consuming and waits for them. After Shutdown the Server
// consumes nothing more, even when its connection is lost and comes back.
type Server struct {
	cfg     ServerConfig
	handler Handler
	tag     string

	mu      sync.Mutex
	ch      *amqp.Channel // the current channel, nil while disconnected
	cancel  context.CancelFunc
	stopped bool // Shutdown was called
	wg      sync.WaitGroup

	served, rejected, expired, panics atomic.Uint64
}

// NewServer returns a Server on sup's connection; it adds itself to sup,
// so it must be built before sup runs.
func NewServer(sup *Supervisor, cfg ServerConfig, h Handler) *Server {
	cfg = cfg.withDefaults(sup)
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &Server{
		cfg:     cfg,
		handler: h,
		tag:     fmt.Sprintf("%s-%s-%d-%s", cfg.Name, host, os.Getpid(), hex.EncodeToString(b[:])),
	}
	sup.Add(s)
	return s
}

// Stats returns what the Server did so far.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Served: s.served.Load(), Rejected: s.rejected.Load(),
		Expired: s.expired.Load(), Panics: s.panics.Load(),
	}
}

// Connected declares the queue and starts consuming it (Component).
func (s *Server) Connected(ctx context.Context, conn *Conn) error {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return nil // a reconnect after Shutdown: stay connected, consume nothing
	}
	if _, err := DeclareQueue(conn.Connection, s.cfg.Queue, s.cfg.Logger); err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return ChannelError("open channel", err)
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return ChannelError("set prefetch", err)
	}
	deliveries, err := ch.Consume(s.cfg.Queue.Name, s.tag, false, false, false, false, nil)
	if err != nil {
		return ChannelError(fmt.Sprintf("consume %q", s.cfg.Queue.Name), err)
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		// Shutdown came during set-up: handle nothing; closing the channel
		// hands what the broker sent to another worker.
		cancel()
		_ = ch.Close()
		return nil
	}
	s.ch, s.cancel = ch, cancel
	// Started under mu, so a Shutdown that finds ch also waits for them.
	for range s.cfg.Concurrency {
		s.wg.Go(func() {
			for d := range deliveries {
				s.handle(hctx, ch, &d)
			}
		})
	}
	return nil
}

// Disconnected waits for the handler goroutines, which end because the
// connection closed their delivery channel (Component).
func (s *Server) Disconnected(error) {
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	s.mu.Lock()
	s.ch, s.cancel = nil, nil
	s.mu.Unlock()
}

// Shutdown stops consuming and waits until the requests already received
// are answered and acknowledged, or ctx ends. Call it before stopping the
// Supervisor: unacknowledged requests go back to the queue for another
// worker when the connection closes. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	ch := s.ch
	s.mu.Unlock()
	if ch != nil {
		// basic.cancel makes the library close the delivery channel once
		// the broker confirmed; the goroutines drain what was buffered.
		_ = ch.Cancel(s.tag, false)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle answers one request and acknowledges it.
func (s *Server) handle(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery) {
	log := s.cfg.Logger
	if d.ReplyTo == "" {
		// Nobody to answer: drop it (or dead-letter it, if the queue has a
		// policy for that) instead of letting it cycle.
		s.rejected.Add(1)
		log.Warn("core: request without reply_to rejected", "queue", s.cfg.Queue.Name,
			"correlation_id", d.CorrelationId, "body_bytes", len(d.Body))
		_ = d.Reject(false)
		return
	}
	if deadline, ok := wire.Deadline(d.Headers); ok {
		if time.Now().After(deadline) {
			// The caller gave up; the work would be wasted.
			s.expired.Add(1)
			_ = d.Ack(false)
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	reply, err := s.serve(ctx, d)
	if err != nil {
		st := status.Convert(Status(err))
		log.Info("core: request failed", "queue", s.cfg.Queue.Name, "correlation_id", d.CorrelationId,
			"code", st.Code(), "err", st.Message())
		reply = amqp.Publishing{
			ContentType: wire.ContentTypeText,
			Headers:     wire.StatusHeaders(st),
			Body:        []byte("error: " + st.Message()),
		}
	}
	reply.CorrelationId = d.CorrelationId
	if err := ch.PublishWithContext(context.WithoutCancel(ctx), "", d.ReplyTo, false, false, reply); err != nil {
		// The channel is gone; the broker requeues the unacknowledged
		// request for another worker.
		log.Warn("core: publish reply", "queue", s.cfg.Queue.Name, "err", err)
		return
	}
	s.served.Add(1)
	_ = d.Ack(false)
}

// serve runs the Handler, turning a panic into INTERNAL.
func (s *Server) serve(ctx context.Context, d *amqp.Delivery) (reply amqp.Publishing, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			s.cfg.Logger.Error("core: handler panicked", "queue", s.cfg.Queue.Name,
				"correlation_id", d.CorrelationId, "panic", p, "stack", string(debug.Stack()))
			reply, err = amqp.Publishing{}, status.Error(codes.Internal, "worker: the handler panicked")
		}
	}()
	return s.handler.ServeAMQP(ctx, d)
}
