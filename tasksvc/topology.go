package tasksvc

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenrpc/warren/core"
)

// watchersRecheck is how old a watchers count may be before SubmitTask
// has it read again (in the background; a count twice as old is read
// before it is used). An idle gateway reads nothing.
const watchersRecheck = 500 * time.Millisecond

// topology is the Service's own core.Component: on every connection it
// declares what the gateway owns (the events exchange, nothing else), and
// follows, on demand, how many WatchTasks streams exist on any gateway
// (through the Service's core.Inspector).
//
// The watchers counter of one connection runs on a goroutine of a
// topoSession; Disconnected, called once the connection is closed, stops
// it and waits for it.
type topology struct {
	exchange string
	watchers string // the watchers queue
	inspect  *core.Inspector
	log      *slog.Logger

	sess atomic.Pointer[topoSession]
}

type topoSession struct {
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

func newTopology(exchange string, inspect *core.Inspector, log *slog.Logger) *topology {
	return &topology{exchange: exchange, watchers: watchersQueue(exchange), inspect: inspect, log: log}
}

// Connected declares the events exchange, reads the watchers count and
// starts the goroutine that reads it again on demand (core.Component).
func (t *topology) Connected(_ context.Context, conn *core.Conn) error {
	if err := declareEventsExchange(conn.Connection, t.exchange, t.log); err != nil {
		return err
	}
	s := &topoSession{stop: make(chan struct{}), kick: make(chan struct{}, 1), refreshed: make(chan struct{})}
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
	q, err := t.inspect.Queue(context.Background(), t.watchers)
	switch {
	case err == nil:
		n = int64(q.Consumers)
	case core.IsNotFound(err):
		n = 0 // nobody watches, anywhere
	}
	s.remote.Store(n)
	s.checked.Store(time.Now().UnixNano())
	s.mu.Lock()
	close(s.refreshed)
	s.refreshed = make(chan struct{})
	s.mu.Unlock()
}
