package core

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	neturl "net/url"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultURL is the broker every warren command uses unless told otherwise.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// ErrClosed is returned by Run when its context ended.
var ErrClosed = errors.New("core: supervisor closed")

// Config configures a Supervisor. The zero value connects to DefaultURL.
type Config struct {
	// URLs are dialled in turn, one per attempt, starting with the first.
	// Default: []string{DefaultURL}.
	URLs []string
	// Name is the connection name shown by the management UI and
	// rabbitmqctl. Default: "warren".
	Name string
	// Heartbeat is the AMQP heartbeat interval; a silent peer is detected
	// after about twice this. Default: 10s.
	Heartbeat time.Duration
	// DialTimeout bounds the TCP connect and AMQP handshake. Default: 5s.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from MinBackoff up to MaxBackoff with full jitter. The small
	// ceiling brings warren back within about a second of the broker.
	// Defaults: 100ms and 1s.
	MinBackoff, MaxBackoff time.Duration
	// TLS configures the TLS of amqps:// URLs: RootCAs verify the broker
	// (nil: the system's roots), Certificates[0] is the client
	// certificate, and each dial uses a copy whose ServerName, when empty,
	// is the URL's host. amqp:// URLs do not use it. Default: nil, with
	// which an amqps:// URL verifies the broker with the system's roots
	// and sends no client certificate.
	TLS *tls.Config
	// Auth is the SASL mechanism of the login. Default: AuthAuto, which
	// logs in with EXTERNAL when TLS holds a client certificate and an
	// amqps:// URL has no password, else with PLAIN.
	Auth Auth
	// DisableWriteCoalescing makes every flush of the AMQP library its own
	// write syscall. By default concurrent publishers' writes are batched
	// into as few syscalls as the socket allows (see coalescingConn):
	// measured here, 12 % more gateway calls/s at 64 concurrent calls and
	// no cost to a lone call's latency.
	DisableWriteCoalescing bool
	// Logger receives connection events. Default: slog.Default().
	Logger *slog.Logger
	// Metrics receives the events of the Supervisor and of every
	// component built on it. Default: nil, which counts nothing.
	Metrics Metrics
	// Tracing traces the publishings and deliveries of every component
	// built on the Supervisor. Default: the zero Tracing, which traces
	// nothing.
	Tracing Tracing
}

func (c Config) withDefaults() Config {
	if len(c.URLs) == 0 {
		c.URLs = []string{DefaultURL}
	}
	if c.Name == "" {
		c.Name = "warren"
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(time.Second, c.MinBackoff)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Conn is one connection of a Supervisor, as its Components see it: the
// amqp091-go connection and the state the Supervisor reads from it. Each
// new connection is a new Conn, so state such as Blocked never outlives
// the connection it belongs to.
type Conn struct {
	*amqp.Connection
	blocked atomic.Bool
}

// Blocked reports whether the broker blocks this connection's publishers
// (connection.blocked: a memory or disk alarm). A publishing sent now
// would wait until the alarm clears.
func (c *Conn) Blocked() bool { return c.blocked.Load() }

// A Component sets up what it needs on each new connection.
type Component interface {
	// Connected is called with every new connection. It declares the
	// handler's topology and starts its consumers. An error closes the
	// connection and the Supervisor tries again after a backoff.
	Connected(ctx context.Context, conn *Conn) error
	// Disconnected is called when a connection whose Connected returned nil
	// is gone; err says why (ErrClosed on shutdown). It fails what depended
	// on the connection and waits for the goroutines Connected started.
	Disconnected(err error)
}

// A BlockedComponent is a Component that also wants to know when the broker
// blocks and unblocks the connection's publishers (connection.blocked,
// raised by a memory or disk alarm). Blocked is called from Run's
// goroutine, between Connected and Disconnected.
type BlockedComponent interface {
	Component
	Blocked(active bool, reason string)
}

// Supervisor keeps one connection up. Create it with New.
type Supervisor struct {
	cfg        Config
	components []Component
	running    atomic.Bool
	up         atomic.Bool
	conn       atomic.Pointer[Conn] // the current connection, nil between them
	mt         *meter
	tc         *tracer
	ups        int // connections set up so far; Run's goroutine only
}

// NewSupervisor returns a Supervisor that will hand its connections to
// components, in order (and report their loss in reverse order).
func NewSupervisor(cfg Config, components ...Component) *Supervisor {
	cfg = cfg.withDefaults()
	mt := newMeter(cfg.Metrics)
	return &Supervisor{cfg: cfg, components: components, mt: mt, tc: newTracer(cfg.Tracing, mt)}
}

// Known records names of the queues and exchanges the components on s
// were configured with: the Metrics label a queue or an exchange with its
// name only when it is known, and as Other when not, so that names from
// requests never become label values. The core records a Consumer's queue
// and a Client's watched queues itself; a service records the other names
// of its configuration it publishes to or subscribes to, when it is
// attached. Every name recorded may be a label value for the life of the
// process: never pass one that came with a request.
func (s *Supervisor) Known(names ...string) { s.mt.know(names...) }

// Add appends h to the Components. It must be called before Run: the
// components of the core (Publisher, Client, Server) add themselves when
// they are built.
func (s *Supervisor) Add(c Component) {
	if s.running.Load() {
		panic("core: Supervisor.Add called after Run")
	}
	s.components = append(s.components, c)
}

// Logger is the Supervisor's logger, for the components built on it.
func (s *Supervisor) Logger() *slog.Logger { return s.cfg.Logger }

// Connected reports whether the Supervisor holds a working connection on
// which every Component's Connected succeeded.
func (s *Supervisor) Connected() bool { return s.up.Load() }

// Blocked reports whether the broker blocks the current connection's
// publishers (connection.blocked: a memory or disk alarm). It is false
// while there is no connection, and a new connection starts unblocked:
// the state belongs to the connection, so a block never outlives it.
func (s *Supervisor) Blocked() bool {
	c := s.conn.Load()
	return c != nil && c.Blocked()
}

// Run keeps a connection up until ctx ends, then closes it, tells the
// Components and returns ErrClosed.
func (s *Supervisor) Run(ctx context.Context) error {
	if s.running.Swap(true) {
		return errors.New("core: Supervisor.Run called twice")
	}
	log := s.cfg.Logger
	failures := 0
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return ErrClosed
		}
		url := s.cfg.URLs[attempt%len(s.cfg.URLs)]
		err := s.session(ctx, url)
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
		var lost *lostError
		if errors.As(err, &lost) {
			// The connection worked; start the backoff afresh.
			failures = 0
			log.Warn("amqp connection lost", "url", redact(url), "err", lost.err)
		} else {
			log.Warn("amqp connect failed", "url", redact(url), "err", err, "attempt", failures+1)
			s.mt.ConnectFailed(s.cfg.Name)
		}
		wait := backoff(s.cfg.MinBackoff, s.cfg.MaxBackoff, failures)
		failures++
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
	}
}

// lostError wraps the reason a working connection ended.
type lostError struct{ err error }

func (e *lostError) Error() string { return "connection lost: " + e.err.Error() }

// session dials url, runs the components on the connection and waits for it to
// end. It returns ErrClosed when ctx ended, a *lostError when a working
// connection was lost, and any other error when it could not be set up.
func (s *Supervisor) session(ctx context.Context, url string) error {
	at, err := newAttempt(url, s.cfg) // TLS and SASL: dialtls.go
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	raw, err := amqp.DialConfig(url, amqp.Config{
		Heartbeat:       s.cfg.Heartbeat,
		Locale:          "en_US",
		Properties:      amqp.Table{"connection_name": s.cfg.Name},
		TLSClientConfig: at.tls,
		SASL:            at.sasl,
		Dial: func(network, addr string) (net.Conn, error) {
			// DefaultDial also sets the deadline that bounds the handshake.
			c, err := amqp.DefaultDial(s.cfg.DialTimeout)(network, addr)
			if err != nil {
				return nil, err
			}
			if c = at.watch(c); s.cfg.DisableWriteCoalescing {
				return c, nil
			}
			return newCoalescingConn(c), nil
		},
	})
	if err != nil {
		return fmt.Errorf("dial: %w", at.explain(err))
	}
	conn := &Conn{Connection: raw}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	s.conn.Store(conn)
	defer s.conn.Store(nil)

	ready := 0
	for _, h := range s.components {
		if err := h.Connected(ctx, conn); err != nil {
			s.close(conn)
			s.disconnect(ready, err)
			return fmt.Errorf("set up: %w", err)
		}
		ready++
	}
	s.up.Store(true)
	s.cfg.Logger.Info("amqp connected", "url", redact(url), "name", s.cfg.Name)
	s.mt.ConnectionUp(s.cfg.Name, s.ups > 0)
	s.ups++

	var cause error
	for cause == nil {
		select {
		case <-ctx.Done():
			cause = ErrClosed
		case b, ok := <-blocked:
			if !ok {
				blocked = nil // closed with the connection; wait for closed
				continue
			}
			conn.blocked.Store(b.Active)
			s.mt.Blocked(s.cfg.Name, b.Active)
			if b.Active {
				s.cfg.Logger.Warn("amqp connection blocked by the broker", "reason", b.Reason)
			} else {
				s.cfg.Logger.Info("amqp connection unblocked")
			}
			for _, h := range s.components {
				if bh, ok := h.(BlockedComponent); ok {
					bh.Blocked(b.Active, b.Reason)
				}
			}
		case e, ok := <-closed:
			if ok && e != nil {
				cause = e
			} else {
				cause = amqp.ErrClosed
			}
		}
	}
	s.up.Store(false)
	s.mt.ConnectionDown(s.cfg.Name)
	s.close(conn)
	s.disconnect(ready, cause)
	if cause == ErrClosed {
		return ErrClosed
	}
	return &lostError{err: cause}
}

// close closes conn, waiting for the broker's close-ok for at most
// DialTimeout: a broker that blocks the connection (a resource alarm)
// reads nothing from it, close included, until the alarm ends.
func (s *Supervisor) close(conn *Conn) {
	_ = conn.CloseDeadline(time.Now().Add(s.cfg.DialTimeout))
}

// disconnect tells the first n components, in reverse order.
func (s *Supervisor) disconnect(n int, err error) {
	for i := n - 1; i >= 0; i-- {
		s.components[i].Disconnected(err)
	}
}

// backoff returns a full-jitter wait for the given count of failures.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	ceil := lo
	for i := 0; i < failures && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	return lo/2 + rand.N(ceil-lo/2+1)
}

// redact hides the password of an AMQP URL for logs, and shows no user
// where the URL has none (amqp091-go's URI would show guest).
func redact(raw string) string {
	if _, err := amqp.ParseURI(raw); err != nil {
		return "<invalid url>"
	}
	u, err := neturl.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	return u.Redacted()
}
