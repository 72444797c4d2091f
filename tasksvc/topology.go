package tasksvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
)

// watchersRecheck is how old a watchers count may be before SubmitTask
// has it read again (in the background; a count twice as old is read
// before it is used). An idle gateway reads nothing.
const watchersRecheck = 500 * time.Millisecond

// topology is the Service's own core.Component: on every connection it
// declares what the gateway owns (the events exchange, nothing else),
// follows, on demand, how many WatchTasks streams exist on any gateway,
// and runs the passive declares the Service needs off the callers'
// goroutines, so no call waits on the broker beyond its deadline.
//
// The work of one connection (the watchers counter, inspections) runs on
// goroutines of a topoSession; Disconnected, called once the connection
// is closed, stops them and waits for them.
type topology struct {
	exchange string
	watchers string // the watchers queue
	log      *slog.Logger

	sess atomic.Pointer[topoSession]
}

type topoSession struct {
	conn *core.Conn
	stop chan struct{} // closed by Disconnected
	kick chan struct{} // buffered 1: a count is wanted
	wg   sync.WaitGroup

	// remote is the watchers queue's consumer count as last read: 0 when
	// it does not exist, -1 when it could not be read; checked is when
	// (unix nanoseconds).
	remote, checked atomic.Int64

	mu        sync.Mutex
	closed    bool
	refreshed chan struct{} // closed when the next count is stored
}

func newTopology(exchange string, log *slog.Logger) *topology {
	return &topology{exchange: exchange, watchers: watchersQueue(exchange), log: log}
}

// Connected declares the events exchange, reads the watchers count and
// starts the goroutine that reads it again on demand (core.Component).
func (t *topology) Connected(_ context.Context, conn *core.Conn) error {
	if err := declareEventsExchange(conn.Connection, t.exchange, t.log); err != nil {
		return err
	}
	s := &topoSession{conn: conn, stop: make(chan struct{}), kick: make(chan struct{}, 1), refreshed: make(chan struct{})}
	t.countWatchers(s) // known before the first call
	s.wg.Go(func() { t.countOnDemand(s) })
	t.sess.Store(s)
	return nil
}

// Disconnected stops the session's goroutines and waits for them; they
// end promptly because the connection is closed (core.Component).
func (t *topology) Disconnected(error) {
	s := t.sess.Swap(nil)
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
}

// watched reports whether anybody may watch task events: a WatchTasks
// stream on this gateway (local), or a consumer of the watchers queue, or
// a count that could not be read. A count older than watchersRecheck is
// read again in the background; one older than twice that is read again
// first, waiting until ctx ends at most.
func (t *topology) watched(ctx context.Context, local int64) bool {
	if local > 0 {
		return true
	}
	s := t.sess.Load()
	if s == nil {
		return false // not connected: the task fails anyway
	}
	switch age := time.Since(time.Unix(0, s.checked.Load())); {
	case age > 2*watchersRecheck:
		if !s.refresh(ctx) {
			return true // unknown
		}
	case age > watchersRecheck:
		s.request()
	}
	return s.remote.Load() != 0
}

// request asks for a new count without waiting for it.
func (s *topoSession) request() {
	select {
	case s.kick <- struct{}{}:
	default: // one is already asked for
	}
}

// refresh asks for a new count and waits for it until ctx ends; it
// reports whether a count came.
func (s *topoSession) refresh(ctx context.Context) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	next := s.refreshed
	s.mu.Unlock()
	s.request()
	select {
	case <-next:
		return true
	case <-ctx.Done():
	case <-s.stop:
	}
	return false
}

// countOnDemand reads the watchers count whenever one is asked for,
// until the session ends.
func (t *topology) countOnDemand(s *topoSession) {
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		t.countWatchers(s)
	}
}

// countWatchers reads the watchers queue's consumer count (a passive
// declare, which the broker logs as an error when nobody watches: that
// is why it is read on demand only).
func (t *topology) countWatchers(s *topoSession) {
	n := int64(-1)
	q, err := inspectQueue(s.conn.Connection, t.watchers)
	switch {
	case err == nil:
		n = int64(q.Consumers)
	case notFound(err):
		n = 0 // nobody watches, anywhere
	}
	s.remote.Store(n)
	s.checked.Store(time.Now().UnixNano())
	s.mu.Lock()
	close(s.refreshed)
	s.refreshed = make(chan struct{})
	s.mu.Unlock()
}

// inspect asks the broker for queue's counts (a passive declare) and
// returns the connection's virtual host with them. It waits until ctx
// ends, or for timeout when ctx has no deadline; the broker's answer is
// awaited on a goroutine of the session, which ends with the connection
// at the latest. A missing queue is the broker's 404 (NOT_FOUND).
func (t *topology) inspect(ctx context.Context, queue string, timeout time.Duration) (amqp.Queue, string, error) {
	s := t.sess.Load()
	if s == nil {
		return amqp.Queue{}, "", core.ErrNotConnected
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return amqp.Queue{}, "", core.ErrNotConnected
	}
	type result struct {
		q   amqp.Queue
		err error
	}
	done := make(chan result, 1)
	s.wg.Go(func() {
		q, err := inspectQueue(s.conn.Connection, queue)
		done <- result{q, err}
	})
	s.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	select {
	case r := <-done:
		return r.q, s.conn.Config.Vhost, r.err
	case <-ctx.Done():
		return amqp.Queue{}, "", fmt.Errorf("no answer from the broker: %w", ctx.Err())
	}
}

// inspectQueue is a passive declare of queue on a channel of its own,
// which it closes. A missing queue is the broker's *amqp.Error 404 (see
// notFound), which closed the channel.
func inspectQueue(conn *amqp.Connection, queue string) (amqp.Queue, error) {
	ch, err := conn.Channel()
	if err != nil {
		return amqp.Queue{}, core.ChannelError("open channel", err)
	}
	defer ch.Close() // a no-op when the 404 closed it
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		return amqp.Queue{}, core.ChannelError(fmt.Sprintf("passive declare %q", queue), err)
	}
	return q, nil
}

// notFound reports whether the broker answered 404 NOT_FOUND.
func notFound(err error) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == amqp.NotFound
}
