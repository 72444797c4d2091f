package logsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
)

// Errors that end subscriptions and fail emits. They reach clients as
// UNAVAILABLE with their text.
var (
	ErrShutdown   = errors.New("logsvc: gateway shutting down")
	ErrNoBroker   = errors.New("logsvc: no broker connection")
	ErrBrokerLost = errors.New("logsvc: broker connection lost")
)

// Service implements warrenv1.LogServiceServer and amqpx.Handler. Create it
// with New, hand it to an amqpx.Supervisor, register it on a grpc.Server,
// and call Shutdown before stopping the server.
type Service struct {
	warrenv1.UnimplementedLogServiceServer

	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	sess   *session // nil while there is no connection
	subs   map[*subscription]struct{}
	closed bool // Shutdown was called

	blocked atomic.Bool // the broker blocks publishing (resource alarm)
}

// Blocked makes EmitLog and EmitLogs fail fast with RESOURCE_EXHAUSTED
// while the broker blocks publishing (amqpx.BlockedHandler).
func (s *Service) Blocked(active bool, _ string) { s.blocked.Store(active) }

// errBlocked is what emits answer while the broker blocks publishing.
var errBlocked = status.Error(codes.ResourceExhausted, "logsvc: the broker blocks publishing (resource alarm)")

// session is what the Service holds for one connection.
type session struct {
	conn *amqp.Connection
	pub  *publisher
	// work counts the subscriptions' AMQP work on conn (set up, then the
	// goroutine that moves deliveries); Disconnected waits for it.
	work sync.WaitGroup
}

var (
	_ warrenv1.LogServiceServer = (*Service)(nil)
	_ amqpx.Handler             = (*Service)(nil)
)

// New returns a Service with no connection: emits and subscriptions fail
// with UNAVAILABLE until the Supervisor calls Connected.
func New(cfg Config) *Service {
	cfg = cfg.withDefaults()
	return &Service{cfg: cfg, log: cfg.Logger, subs: make(map[*subscription]struct{})}
}

// Connected declares the three exchanges on conn, exactly as the tutorials
// do (non-durable, using one that exists with other properties as it is),
// and opens the confirm-mode channel emits publish on.
func (s *Service) Connected(ctx context.Context, conn *amqp.Connection) error {
	if err := declareExchanges(conn, s.cfg.exchanges(), s.log); err != nil {
		return err
	}
	pub, err := newPublisher(conn, s.cfg, s.log)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.sess = &session{conn: conn, pub: pub}
	s.mu.Unlock()
	return nil
}

// Disconnected ends every subscription with UNAVAILABLE, makes emits fail
// with UNAVAILABLE until the next Connected, and waits for the
// subscriptions' AMQP work on the lost connection to end. It does not wait
// for streams blocked sending to clients that stopped reading.
//
// When err is amqpx.ErrClosed (the Supervisor is stopping with the
// gateway) subscriptions end as Shutdown ends them.
func (s *Service) Disconnected(err error) {
	cause := ErrBrokerLost
	if errors.Is(err, amqpx.ErrClosed) {
		cause = ErrShutdown
	}
	s.mu.Lock()
	sess := s.sess
	s.sess = nil
	s.cancelSubsLocked(cause)
	s.mu.Unlock()
	if sess == nil {
		return
	}
	sess.pub.close()
	sess.work.Wait()
	if cause == ErrShutdown {
		s.log.Info("logsvc: broker connection closed")
		return
	}
	s.log.Warn("logsvc: broker connection lost; subscriptions ended", "err", err)
}

// Shutdown ends every subscription with UNAVAILABLE "gateway shutting
// down" and makes further emits and subscriptions fail the same way. It
// does not wait: the gateway calls it before grpc.Server.GracefulStop,
// which waits for the handlers. It is idempotent.
func (s *Service) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cancelSubsLocked(ErrShutdown)
}

// cancelSubsLocked ends every subscription with cause; s.mu is held.
func (s *Service) cancelSubsLocked(cause error) {
	for sub := range s.subs {
		sub.cancel(cause)
		delete(s.subs, sub)
	}
}

// current returns the session emits and subscriptions use, or the status
// error to return.
func (s *Service) current() (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, toStatus(ErrShutdown)
	}
	if s.sess == nil {
		return nil, toStatus(ErrNoBroker)
	}
	return s.sess, nil
}

// declareExchanges declares each exchange as the tutorials do:
// exchange_declare(exchange=name, exchange_type=kind), that is
// non-durable, not auto-deleted, not internal. One that already exists with
// other properties (the broker answers 406) is used as it is.
func declareExchanges(conn *amqp.Connection, exs []exchange, log *slog.Logger) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	for _, ex := range exs {
		err := ch.ExchangeDeclare(ex.name, ex.kind, false, false, false, false, nil)
		if err == nil {
			continue
		}
		var aerr *amqp.Error
		if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed {
			return fmt.Errorf("declare exchange %q: %w", ex.name, err)
		}
		// The 406 closed the channel; check the exchange exists on a new one.
		if ch, err = conn.Channel(); err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		if perr := ch.ExchangeDeclarePassive(ex.name, ex.kind, false, false, false, false, nil); perr != nil {
			return fmt.Errorf("declare exchange %q: %w (and passive declare: %v)", ex.name, aerr, perr)
		}
		log.Warn("logsvc: exchange exists with other properties; using it as it is",
			"exchange", ex.name, "wanted_type", ex.kind, "broker", aerr.Reason)
	}
	return nil
}

// toStatus maps an error to the gRPC status a handler returns. It is the
// one place where errors become codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, ErrShutdown):
		return status.Error(codes.Unavailable, "gateway shutting down")
	case errors.Is(err, ErrOverflow):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, amqp.ErrChannelMax):
		return status.Error(codes.ResourceExhausted, "logsvc: too many subscriptions on this gateway's broker connection")
	}
	return status.Error(codes.Unavailable, err.Error())
}
