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

// IsNotFound reports whether err is the broker's 404 NOT_FOUND: the queue
// or exchange asked about does not exist.
func IsNotFound(err error) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == amqp.NotFound
}

// inspector runs passive declares on one channel of a connection, opening
// it again when a 404 closed it. Its methods are safe for concurrent use;
// the passive declares run one at a time.
type inspector struct {
	conn *Conn
	mu   sync.Mutex // serialises the passive declares; guards ch
	ch   *amqp.Channel
}

// uncountedAfter is how long RabbitMQ (3.10, and the versions since)
// waits for a quorum queue to count its messages and consumers for a
// passive declare. When the queue does not answer in time (its process is
// busy: a loaded broker), the broker does not fail the declare: it
// answers zero messages and zero consumers. So a declare that says zero
// and zero, after at least this long, says nothing.
const uncountedAfter = 250 * time.Millisecond

// queue asks the broker for a queue's counts. A missing queue is the
// broker's 404 (IsNotFound), an *amqp.Error that Status maps to NOT_FOUND;
// counts the broker did not take in time are ErrUncounted.
func (in *inspector) queue(name string) (amqp.Queue, error) {
	var q amqp.Queue
	var took time.Duration
	err := in.do(fmt.Sprintf("passive declare queue %q", name), func(ch *amqp.Channel) (err error) {
		start := time.Now()
		q, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
		took = time.Since(start)
		return err
	})
	if err == nil && q.Messages == 0 && q.Consumers == 0 && took >= uncountedAfter {
		return q, fmt.Errorf("%w: %q answered zero messages and zero consumers after %v", ErrUncounted, name, took.Round(time.Millisecond))
	}
	return q, err
}

// exchange asks the broker whether an exchange exists (IsNotFound when it
// does not).
func (in *inspector) exchange(name, kind string) error {
	return in.do(fmt.Sprintf("passive declare exchange %q", name), func(ch *amqp.Channel) error {
		return ch.ExchangeDeclarePassive(name, kind, false, false, false, false, nil)
	})
}

func (in *inspector) do(what string, f func(*amqp.Channel) error) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ch == nil || in.ch.IsClosed() {
		ch, err := in.conn.Channel()
		if err != nil {
			return ChannelError("open channel", err)
		}
		in.ch = ch
	}
	if err := f(in.ch); err != nil {
		return ChannelError(what, err) // a 404 closed the channel; the next call opens one
	}
	return nil
}

func (in *inspector) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ch != nil {
		_ = in.ch.Close()
		in.ch = nil
	}
}

// InspectorConfig configures an Inspector. The zero value works.
type InspectorConfig struct {
	// Timeout bounds a question whose context has no deadline. Default: 10s.
	Timeout time.Duration
}

// Inspector asks the broker about queues and exchanges (passive declares)
// on its Supervisor's connection, for the services that report on what
// they do not own: a queue's counts, whether an exchange still exists.
//
// Concurrency: its methods are safe for concurrent use. amqp091-go's
// passive declares take no context, so each runs on a goroutine of the
// Inspector's, and the caller waits for it until its context ends (or the
// Timeout, when it has no deadline); a late answer is dropped. Those
// goroutines end with the connection at the latest; Disconnected waits for
// them.
type Inspector struct {
	cfg  InspectorConfig
	sess atomic.Pointer[inspectorSession]
}

type inspectorSession struct {
	inspector
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewInspector returns an Inspector on sup's connection; it adds itself
// to sup, so it must be built before sup runs.
func NewInspector(sup *Supervisor, cfg InspectorConfig) *Inspector {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	in := &Inspector{cfg: cfg}
	sup.Add(in)
	return in
}

// Connected implements Component.
func (in *Inspector) Connected(_ context.Context, conn *Conn) error {
	in.sess.Store(&inspectorSession{inspector: inspector{conn: conn}})
	return nil
}

// Disconnected waits for the questions still running (Component).
func (in *Inspector) Disconnected(error) {
	s := in.sess.Swap(nil)
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	s.close()
}

// Vhost is the virtual host of the current connection ("" while there is
// none).
func (in *Inspector) Vhost() string {
	if s := in.sess.Load(); s != nil {
		return s.conn.Config.Vhost
	}
	return ""
}

// Queue asks the broker for a queue's counts. A missing queue is the
// broker's 404 (IsNotFound; Status maps it to NOT_FOUND).
func (in *Inspector) Queue(ctx context.Context, name string) (amqp.Queue, error) {
	var q amqp.Queue
	err := in.ask(ctx, func(s *inspectorSession) (err error) {
		q, err = s.queue(name)
		return err
	})
	return q, err
}

// Exchange asks the broker whether an exchange of that kind exists
// (IsNotFound when it does not).
func (in *Inspector) Exchange(ctx context.Context, name, kind string) error {
	return in.ask(ctx, func(s *inspectorSession) error { return s.exchange(name, kind) })
}

func (in *Inspector) ask(ctx context.Context, f func(*inspectorSession) error) error {
	s := in.sess.Load()
	if s == nil {
		return ErrNotConnected
	}
	if s.conn.Blocked() {
		return ErrBlocked // the question would wait in the broker until the alarm ends
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, in.cfg.Timeout)
		defer cancel()
	}
	done := make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrNotConnected
	}
	s.wg.Go(func() { done <- f(s) })
	s.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("core: no answer from the broker: %w", ctx.Err())
	}
}
