package core

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// MuxConfig configures a Mux.
type MuxConfig struct {
	// Exchange is the exchange every subscription of the Mux binds to.
	Exchange string
	// Kind is the exchange's type: "fanout", "direct" or "topic"; it
	// decides which subscriptions a delivery reaches (MatchKey).
	Kind string
	// Prefetch is the basic.qos prefetch count of the Mux's one consumer:
	// the deliveries the broker sends before it waits for an
	// acknowledgement. The pump acknowledges a delivery once it is in the
	// buffer of every subscription it matches. Default: 1024.
	Prefetch int
	// MaxLength bounds the deliveries one subscription holds in the
	// gateway while its client reads slowly; one more ends that
	// subscription with ErrOverflow (and no other). Default: 10000.
	MaxLength int
	// Linger is how long a binding key stays bound after its last
	// subscription ended, so that subscriptions that come and go do not
	// make the broker change its bindings each time (a key subscribed
	// again meanwhile needs no bind). Deliveries for a lingering key reach
	// nobody and are acknowledged. Default: 1s; negative: unbind at once.
	Linger time.Duration
	// History, when set, keeps the exchange's messages in a stream that
	// carries the Mux's subscriptions instead of a queue of its own: see
	// HistoryConfig. Nil: no history, and SubscribeFrom fails with
	// ErrHistoryOff.
	History *HistoryConfig
	// Presence, when set, is a queue the Mux consumes while it has at
	// least one subscription (and Linger after its last), declared
	// non-durable and auto-delete: its consumer count is the number of
	// gateways with subscriptions, for publishers that publish only while
	// somebody listens. Nothing is published to it.
	Presence string
}

func (c MuxConfig) withDefaults() MuxConfig {
	if c.Prefetch <= 0 {
		c.Prefetch = 1024
	}
	if c.MaxLength <= 0 {
		c.MaxLength = 10000
	}
	if c.Linger == 0 {
		c.Linger = time.Second
	}
	return c
}

// Mux multiplexes subscriptions to one exchange over one queue and one
// consumer per connection.
//
// The queue is server-named, exclusive and auto-delete: it belongs to the
// connection and dies with it. It is bound with the union of the live
// subscriptions' binding keys: a key is bound when its first subscriber
// arrives and unbound when its last leaves (bind and unbind of one key
// are serialised, so a subscribe racing an unsubscribe never leaves the
// key unbound while a subscriber needs it). A pump goroutine takes each
// delivery, hands it to the buffer of every subscription with a key that
// matches the routing key (MatchKey, the broker's own matching), and then
// acknowledges it. It never blocks on a client: a subscription whose
// buffer is full ends with ErrOverflow.
//
// The queue, its consumer and its channels are made on the first
// Subscribe of a connection and live as long as the connection (a queue
// with no bindings receives nothing). When the connection is lost, every
// subscription ends with ErrConnectionLost; clients subscribe again, on
// the next connection.
//
// Concurrency: Subscribe is safe for concurrent use; exactly one goroutine
// may call a MuxSubscription's Stream.
type Mux struct {
	cfg MuxConfig
	mt  *meter
	tc  *tracer

	mu   sync.Mutex // guards conn and sess; held while a session is made
	conn *Conn
	sess *muxSession

	spills  atomic.Int64  // subscriptions whose buffer overflowed with a history
	replays chan struct{} // a token per consumer of the history of its own
}

// streamBindingKeys are the keys that bind a history stream to every
// message of its exchange, for the kinds that have one.
func (m *Mux) streamBindingKeys() []string {
	switch m.cfg.Kind {
	case "topic":
		return []string{"#"}
	case "direct":
		return m.cfg.History.Keys
	}
	return []string{""}
}

// declareHistory declares the history stream and binds it to the exchange,
// on a channel of its own.
func (m *Mux) declareHistory(conn *Conn) error {
	h := m.cfg.History
	ch, err := conn.Channel()
	if err != nil {
		return ChannelError("open channel", err)
	}
	defer func() { _ = ch.Close() }()
	if _, err := ch.QueueDeclare(h.Stream, true, false, false, false, h.arguments()); err != nil {
		return ChannelError(fmt.Sprintf("declare stream %q", h.Stream), err)
	}
	for _, k := range m.streamBindingKeys() {
		if err := ch.QueueBind(h.Stream, k, m.cfg.Exchange, false, nil); err != nil {
			return ChannelError(fmt.Sprintf("bind stream %q to %q with %q", h.Stream, m.cfg.Exchange, k), err)
		}
	}
	return nil
}

// NewMux returns a Mux on sup's connection; it adds itself to sup, so it
// must be built before sup runs.
func NewMux(sup *Supervisor, cfg MuxConfig) *Mux {
	m := &Mux{cfg: cfg.withDefaults(), mt: sup.mt, tc: sup.tc}
	if h := m.cfg.History; h != nil {
		m.replays = make(chan struct{}, cmp.Or(max(h.Replays, 0), 256))
	}
	sup.Add(m)
	return m
}

// Connected implements Component: it declares and binds the history
// stream, if any. The session is made by the first Subscribe.
func (m *Mux) Connected(_ context.Context, conn *Conn) error {
	if m.cfg.History != nil {
		if err := m.declareHistory(conn); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.conn = conn
	m.mu.Unlock()
	return nil
}

// Disconnected ends every subscription with ErrConnectionLost and waits for
// the pump (Component).
func (m *Mux) Disconnected(error) {
	m.mu.Lock()
	s := m.sess
	m.conn, m.sess = nil, nil
	m.mu.Unlock()
	if s != nil {
		s.end(ErrConnectionLost)
		<-s.done
	}
}

// Queue is the name of the Mux's queue on the current connection, or ""
// before the first subscription of the connection.
func (m *Mux) Queue() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess == nil {
		return ""
	}
	return m.sess.queue
}

// session returns the connection's session, making it if there is none
// (or the last one ended).
func (m *Mux) session() (*muxSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn == nil || m.conn.IsClosed() {
		return nil, ErrNotConnected
	}
	if m.conn.Blocked() {
		// A blocked connection's frames wait in the broker until the
		// alarm ends, and amqp091-go's declarations take no context:
		// fail now rather than hang.
		return nil, ErrBlocked
	}
	if m.sess != nil && m.sess.ctx.Err() == nil {
		return m.sess, nil
	}
	if m.sess != nil {
		<-m.sess.done
	}
	s, err := newMuxSession(m, m.conn)
	if err != nil {
		return nil, err
	}
	m.sess = s
	return s, nil
}

// Subscribe binds the Mux's queue with keys (each one already checked for
// the exchange's kind; see BindingKeys) where no other subscription did,
// and returns a subscription that receives every delivery whose routing
// key one of keys matches, from the moment Subscribe returns. It lives
// until ctx ends, Close is called, Stream returns, its buffer overflows
// or the connection closes. It fails at once with ErrNotConnected or
// ErrBlocked when there is no connection, or the broker blocks it.
func (m *Mux) Subscribe(ctx context.Context, keys []string) (*MuxSubscription, error) {
	// The caller's scopes, before anything is bound (core.CheckScope).
	for _, k := range keys {
		if err := CheckScope(ctx, KeySubscribe, m.cfg.Exchange, k); err != nil {
			return nil, err
		}
	}
	s, err := m.session()
	if err != nil {
		return nil, err
	}
	sub := &MuxSubscription{
		sess:  s,
		keys:  keys,
		ready: make(chan struct{}, 1),
		mt:    m.mt,
		tc:    m.tc,
		name:  m.cfg.Exchange,
	}
	if m.cfg.History != nil {
		sub.h = newSubHistory(m) // it may fall back on the history
	}
	sub.ctx, sub.cancel = context.WithCancelCause(ctx)
	if !s.add(sub) {
		sub.cancel(nil)
		return nil, ErrNotConnected
	}
	if m.mt.on {
		sub.label = m.mt.name(m.cfg.Exchange)
		m.mt.SubscriptionOpened(sub.label, "")
	}
	for _, k := range keys {
		if err := s.acquire(k); err != nil {
			sub.end(CloseEnded, err)
			return nil, err
		}
		sub.acquired++
	}
	if err := s.enter(sub); err != nil {
		sub.end(CloseEnded, err)
		return nil, err
	}
	return sub, nil
}

// Rebind binds every key a live subscription holds once more: after the
// exchange was deleted and declared again, which removed its bindings.
func (m *Mux) Rebind() error {
	m.mu.Lock()
	s, conn := m.sess, m.conn
	m.mu.Unlock()
	if s == nil || s.ctx.Err() != nil {
		if m.cfg.History != nil && conn != nil {
			return m.declareHistory(conn)
		}
		return nil
	}
	return s.rebind()
}

// muxSession is a Mux's queue, consumer and bindings on one connection.
type muxSession struct {
	m     *Mux
	conn  *Conn
	queue string
	ch    *amqp.Channel // the consumer's
	ctx   context.Context
	end   context.CancelCauseFunc // ends the session and every subscription
	done  chan struct{}           // closed when the pump cleaned up

	ctrlMu sync.Mutex    // serialises the binding RPCs; guards ctrl
	ctrl   *amqp.Channel // binds and unbinds; reopened after an exception

	keysMu sync.Mutex // guards keys and each muxKey's refs
	keys   map[string]*muxKey

	presence *muxPresence // nil without MuxConfig.Presence

	subsMu sync.RWMutex // guards the index; the pump reads it
	exact  map[string]map[*MuxSubscription]struct{}
	wild   map[string]map[*MuxSubscription]struct{} // topic keys with * or #
	closed bool                                     // no more subscriptions
}

// muxKey is one binding key of the queue: refs subscriptions hold it, and
// bound says whether the broker has it. mu serialises its bind and unbind.
type muxKey struct {
	mu    sync.Mutex
	refs  int         // under muxSession.keysMu
	timer *time.Timer // the linger after the last release; under keysMu
	bound bool
}

func newMuxSession(m *Mux, conn *Conn) (s *muxSession, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, ChannelError("open channel", err)
	}
	defer func() {
		if err != nil {
			_ = ch.Close()
		}
	}()
	if err = ch.Qos(m.cfg.Prefetch, 0, false); err != nil {
		return nil, ChannelError("set prefetch", err)
	}
	// With a history, the stream from its next message; otherwise a queue
	// of the connection's own.
	queue, exclusive, args := "", true, amqp.Table(nil)
	if h := m.cfg.History; h != nil {
		queue, exclusive, args = h.Stream, false, amqp.Table{"x-stream-offset": "next"}
	} else {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			return nil, ChannelError("declare queue", err)
		}
		queue = q.Name
	}
	deliveries, err := ch.Consume(queue, "", false, exclusive, false, false, args)
	if err != nil {
		return nil, ChannelError(fmt.Sprintf("consume %q", queue), err)
	}
	s = &muxSession{
		m: m, conn: conn, queue: queue, ch: ch,
		done:  make(chan struct{}),
		keys:  map[string]*muxKey{},
		exact: map[string]map[*MuxSubscription]struct{}{},
		wild:  map[string]map[*MuxSubscription]struct{}{},
	}
	if m.cfg.Presence != "" {
		s.presence = &muxPresence{queue: m.cfg.Presence, linger: m.cfg.Linger}
	}
	s.ctx, s.end = context.WithCancelCause(context.Background())
	go s.pump(deliveries)
	return s, nil
}

// bind binds the queue with key: the one place where a subscription's
// binding reaches the broker. A history stream is bound with every key of
// a topic or fanout exchange already (Connected); a direct exchange's
// stream with each key a subscription asks for, once per session.
func (s *muxSession) bind(key string) error {
	if s.m.cfg.History != nil && s.m.cfg.Kind != "direct" {
		return nil
	}
	return s.control(func(ch *amqp.Channel) error {
		if err := ch.QueueBind(s.queue, key, s.m.cfg.Exchange, false, nil); err != nil {
			return ChannelError(fmt.Sprintf("bind queue to %q with %q", s.m.cfg.Exchange, key), err)
		}
		return nil
	})
}

// unbind removes the queue's binding with key; a history stream keeps its
// bindings, so that the history of a key has no holes.
func (s *muxSession) unbind(key string) error {
	if s.m.cfg.History != nil {
		return nil
	}
	return s.control(func(ch *amqp.Channel) error {
		if err := ch.QueueUnbind(s.queue, key, s.m.cfg.Exchange, nil); err != nil {
			return ChannelError(fmt.Sprintf("unbind queue from %q with %q", s.m.cfg.Exchange, key), err)
		}
		return nil
	})
}

// control runs f on the control channel, opening it if it is closed (an
// exception, such as a bind to a missing exchange, kills it).
func (s *muxSession) control(f func(*amqp.Channel) error) error {
	s.ctrlMu.Lock()
	defer s.ctrlMu.Unlock()
	if s.ctx.Err() != nil {
		return context.Cause(s.ctx)
	}
	if s.ctrl == nil || s.ctrl.IsClosed() {
		ch, err := s.conn.Channel()
		if err != nil {
			return ChannelError("open channel", err)
		}
		s.ctrl = ch
	}
	return f(s.ctrl)
}

// acquire takes a reference on key and binds it if it is not bound.
func (s *muxSession) acquire(key string) error {
	s.keysMu.Lock()
	k := s.keys[key]
	if k == nil {
		k = &muxKey{}
		s.keys[key] = k
	}
	k.refs++
	s.keysMu.Unlock()

	k.mu.Lock()
	defer k.mu.Unlock()
	if k.bound {
		return nil
	}
	if err := s.bind(key); err != nil {
		s.keysMu.Lock()
		k.refs--
		if k.refs == 0 && s.keys[key] == k {
			delete(s.keys, key)
		}
		s.keysMu.Unlock()
		return err
	}
	k.bound = true
	return nil
}

// release drops a reference on key; after the last, the key lingers
// (MuxConfig.Linger) and is then unbound unless taken again meanwhile.
func (s *muxSession) release(key string) {
	s.keysMu.Lock()
	k := s.keys[key]
	if k == nil {
		s.keysMu.Unlock()
		return
	}
	k.refs--
	if k.refs > 0 {
		s.keysMu.Unlock()
		return
	}
	if s.m.cfg.Linger < 0 {
		s.keysMu.Unlock()
		s.expire(key, k)
		return
	}
	defer s.keysMu.Unlock()
	if k.timer == nil {
		k.timer = time.AfterFunc(s.m.cfg.Linger, func() { s.expire(key, k) })
	} else {
		k.timer.Reset(s.m.cfg.Linger)
	}
}

// expire unbinds key if no subscription took it again, and then forgets
// it. The key stays in the map until it is unbound, so that an acquire
// meanwhile waits for k.mu and binds it again after the unbind, never
// before it.
func (s *muxSession) expire(key string, k *muxKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s.keysMu.Lock()
	idle := k.refs == 0 && s.keys[key] == k
	s.keysMu.Unlock()
	if !idle {
		return
	}
	if k.bound && s.ctx.Err() == nil {
		// Fails only when the channel or connection is gone, and the
		// binding with it.
		_ = s.unbind(key)
	}
	k.bound = false
	s.keysMu.Lock()
	if k.refs == 0 && s.keys[key] == k {
		delete(s.keys, key)
	}
	s.keysMu.Unlock()
}

// stopLingering stops the linger of every key (the session ended).
func (s *muxSession) stopLingering() {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	for _, k := range s.keys {
		if k.timer != nil {
			k.timer.Stop()
		}
	}
}

// rebind binds every key that is bound once more, and a history stream's
// own keys.
func (s *muxSession) rebind() error {
	if s.m.cfg.History != nil {
		if err := s.m.declareHistory(s.conn); err != nil {
			return err
		}
	}
	s.keysMu.Lock()
	keys := make([]string, 0, len(s.keys))
	for key := range s.keys {
		keys = append(keys, key)
	}
	s.keysMu.Unlock()
	for _, key := range keys {
		s.keysMu.Lock()
		k := s.keys[key]
		s.keysMu.Unlock()
		if k == nil {
			continue
		}
		k.mu.Lock()
		var err error
		if k.bound {
			err = s.bind(key)
		}
		k.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// wildcard reports whether a binding key needs MatchKey rather than an
// exact lookup.
func (s *muxSession) wildcard(key string) bool {
	switch s.m.cfg.Kind {
	case "direct":
		return false
	case "topic":
		return key == "*" || key == "#" ||
			strings.HasPrefix(key, "*.") || strings.HasPrefix(key, "#.") ||
			strings.HasSuffix(key, ".*") || strings.HasSuffix(key, ".#") ||
			strings.Contains(key, ".*.") || strings.Contains(key, ".#.")
	}
	return true // fanout, and kinds MatchKey decides on
}

// add puts sub in the index, before its keys are bound, so that it sees
// every delivery from the moment they are. It reports false if the session
// ended.
func (s *muxSession) add(sub *MuxSubscription) bool {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.closed {
		return false
	}
	for _, k := range sub.keys {
		idx := s.exact
		if s.wildcard(k) {
			idx = s.wild
		}
		set := idx[k]
		if set == nil {
			set = map[*MuxSubscription]struct{}{}
			idx[k] = set
		}
		set[sub] = struct{}{}
	}
	return true
}

// remove takes sub out of the index and releases the keys it acquired.
func (s *muxSession) remove(sub *MuxSubscription) {
	s.subsMu.Lock()
	for _, k := range sub.keys {
		for _, idx := range []map[string]map[*MuxSubscription]struct{}{s.exact, s.wild} {
			if set := idx[k]; set != nil {
				delete(set, sub)
				if len(set) == 0 {
					delete(idx, k)
				}
			}
		}
	}
	s.subsMu.Unlock()
	for _, k := range sub.keys[:sub.acquired] {
		s.release(k)
	}
	if sub.present {
		sub.present = false
		s.presence.leave()
	}
}

// enter counts sub in the session's presence, if it has one.
func (s *muxSession) enter(sub *MuxSubscription) error {
	if s.presence == nil {
		return nil
	}
	if err := s.presence.enter(s.conn); err != nil {
		return err
	}
	sub.present = true
	return nil
}

// pump hands every delivery to the subscriptions it matches, then
// acknowledges it (multiple, whenever no further delivery waits and at
// least every Prefetch/4), until the channel closes or the session ends.
func (s *muxSession) pump(deliveries <-chan amqp.Delivery) {
	defer close(s.done)
	closed := s.ch.NotifyClose(make(chan *amqp.Error, 1))
	defer func() {
		s.subsMu.Lock()
		s.closed = true
		s.subsMu.Unlock()
		s.stopLingering()
		if s.presence != nil {
			s.presence.close()
		}
		_ = s.ch.Close()
		s.ctrlMu.Lock()
		if s.ctrl != nil {
			_ = s.ctrl.Close()
		}
		s.ctrlMu.Unlock()
	}()
	acks := newAcker(s.ch, s.m.cfg.Prefetch/4, nil)
	var seq uint64
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		default:
			acks.flush()
			select {
			case d, ok = <-deliveries:
			case <-s.ctx.Done():
				return
			}
		}
		if !ok {
			s.end(s.lost(closed))
			return
		}
		seq++
		s.dispatch(&d, seq)
		acks.take(d.DeliveryTag)
	}
}

// dispatch offers d to every subscription with a key that matches its
// routing key, once each.
func (s *muxSession) dispatch(d *amqp.Delivery, seq uint64) {
	s.subsMu.RLock()
	defer s.subsMu.RUnlock()
	offer := func(set map[*MuxSubscription]struct{}) {
		for sub := range set {
			if sub.seq != seq {
				sub.seq = seq
				sub.offer(d)
			}
		}
	}
	offer(s.exact[d.RoutingKey])
	for k, set := range s.wild {
		if MatchKey(s.m.cfg.Kind, k, d.RoutingKey) {
			offer(set)
		}
	}
}

// lost is why the consumer's channel closed (consumerLost).
func (s *muxSession) lost(closed <-chan *amqp.Error) error {
	return consumerLost(s.conn, closed, "subscriptions'")
}

// consumerLost is why a consumer's deliveries ended: the connection was
// lost, or the broker closed the channel (someone deleted the queue) or
// cancelled the consumer. whose names the consumer in the error.
func consumerLost(conn *Conn, closed <-chan *amqp.Error, whose string) error {
	if conn.IsClosed() {
		return ErrConnectionLost
	}
	select {
	case e, ok := <-closed:
		if ok && e != nil {
			return fmt.Errorf("core: the broker closed the %s channel: %w", whose, e)
		}
	default:
	}
	return fmt.Errorf("core: the broker ended the %s consumer: %w", whose, ErrConnectionLost)
}

// MuxSubscription is one client's subscription on a Mux: a bounded buffer
// the pump fills and Stream drains.
type MuxSubscription struct {
	sess     *muxSession // nil while it replays; see subHistory
	h        *subHistory // nil when the Mux keeps no history
	keys     []string
	acquired int  // keys[:acquired] hold a reference; set by Subscribe
	present  bool // counted in the session's presence

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu    sync.Mutex
	buf   []*amqp.Delivery // what the pump handed over, in order
	spare []*amqp.Delivery // Stream's previous buf, reused
	ready chan struct{}    // a token when buf became non-empty

	seq uint64 // the last delivery offered; the pump's only

	once   sync.Once
	reason atomic.Value // CloseReason, the first one given
	mt     *meter
	label  string
	tc     *tracer
	name   string // the exchange, for the spans
}

// offer appends d to the buffer, or ends the subscription with
// ErrOverflow if the buffer is full; with a history, it spills the buffer
// instead, and Stream reads on from the history. It never blocks (the
// pump calls it).
func (m *MuxSubscription) offer(d *amqp.Delivery) {
	if m.ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	h := m.h
	if h != nil {
		if h.spilled {
			m.mu.Unlock()
			return
		}
		if h.first < 0 {
			if off, ok := StreamOffset(d); ok {
				h.first = off
			}
		}
	}
	if len(m.buf) >= m.sess.m.cfg.MaxLength {
		m.buf = nil // the client will not get these: let them go now
		if h != nil {
			h.spilled = true
			m.mu.Unlock()
			m.sess.m.spills.Add(1)
			m.wake()
			return
		}
		m.mu.Unlock()
		m.reason.CompareAndSwap(nil, CloseOverflow)
		m.cancel(ErrOverflow)
		return
	}
	m.buf = append(m.buf, d)
	m.mu.Unlock()
	m.wake()
}

// wake gives Stream the token that says the buffer changed, unless it has
// one already.
func (m *MuxSubscription) wake() {
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// Queue is the name of the queue the subscription's deliveries come from,
// shared with the other subscriptions of its Mux: the history stream when
// the Mux keeps one.
func (m *MuxSubscription) Queue() string {
	if m.h != nil {
		return m.h.stream
	}
	return m.sess.queue
}

// Close ends the subscription: it leaves the index and unbinds the keys
// no other subscription holds. It is idempotent.
func (m *MuxSubscription) Close() { m.end(CloseEnded, nil) }

func (m *MuxSubscription) end(reason CloseReason, cause error) {
	m.reason.CompareAndSwap(nil, reason)
	m.cancel(cause)
	m.once.Do(func() {
		sess := m.sess
		if h := m.h; h != nil {
			// Stream may be joining or leaving the live feed: wait.
			h.stateMu.Lock()
			h.ended = true
			h.closeReplay()
			sess = m.sess
			if sess != nil {
				sess.remove(m)
			}
			h.stateMu.Unlock()
		} else {
			sess.remove(m)
		}
		m.mu.Lock()
		m.buf, m.spare = nil, nil
		m.mu.Unlock()
		if m.mt.on {
			r, _ := m.reason.Load().(CloseReason)
			if r == CloseEnded && sess != nil && sess.ctx.Err() != nil {
				r = CloseLost
			}
			m.mt.SubscriptionClosed(m.label, "", r)
		}
	})
}

// send hands d to send, under its span when tracing: the child of the
// subscription's context, linked to the publishing's.
func (m *MuxSubscription) send(send func(*amqp.Delivery) error, d *amqp.Delivery) error {
	if !m.tc.on {
		return send(d)
	}
	span := m.tc.deliver(m.ctx, m.name, d)
	err := send(d)
	end(span, err)
	return err
}

// Stream hands every delivery to send, in the order the broker delivered
// them, until the subscription ends; then it closes the subscription and
// returns why it ended: send's error, the context's cause (the client's
// cancel, or what the caller cancelled it with), ErrOverflow, or the loss
// of the connection or channel. With a history, a subscription never ends
// with ErrOverflow: it reads on from the history at its client's pace
// (subHistory). Only one goroutine may call Stream.
func (m *MuxSubscription) Stream(send func(*amqp.Delivery) error) error {
	defer m.Close()
	for {
		if h := m.h; h != nil && h.replaying.Load() {
			if err := m.streamReplay(send); err != errJoined {
				return err
			}
			h.stateMu.Lock()
			h.closeReplay() // the live feed goes on from here
			h.stateMu.Unlock()
			h.replaying.Store(false)
			// streamReplay may have taken the token of what the buffer
			// holds: streamLive starts with a look at it.
			m.wake()
		}
		if err := m.streamLive(send); err != errSpilled {
			return err
		}
		if err := m.fallBack(); err != nil {
			return err
		}
	}
}

// streamLive is Stream on the live feed: it hands over the buffer's
// deliveries until the subscription ends, or, with a history, until its
// buffer spilled (errSpilled).
func (m *MuxSubscription) streamLive(send func(*amqp.Delivery) error) error {
	h := m.h
	for {
		select {
		case <-m.ready:
		case <-m.sess.ctx.Done():
			m.cancel(context.Cause(m.sess.ctx))
			return context.Cause(m.ctx)
		case <-m.ctx.Done():
			return context.Cause(m.ctx)
		}
		m.mu.Lock()
		if h != nil && h.spilled {
			m.mu.Unlock()
			return errSpilled
		}
		batch := m.buf
		m.buf, m.spare = m.spare[:0], nil
		m.mu.Unlock()
		for i, d := range batch {
			if m.ctx.Err() != nil {
				return context.Cause(m.ctx)
			}
			if h != nil {
				// Skip what a replay that joined handed over already,
				// and note how far the client got.
				if off, ok := StreamOffset(d); ok {
					if off <= h.last {
						batch[i] = nil
						continue
					}
					h.last = off
				}
			}
			if err := m.send(send, d); err != nil {
				return err
			}
			batch[i] = nil
		}
		m.mu.Lock()
		if m.spare == nil && cap(batch) <= 1024 {
			m.spare = batch[:0] // small enough to keep for the next batch
		}
		m.mu.Unlock()
	}
}
