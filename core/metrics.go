package core

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Other is the label value that stands for every queue or exchange name
// the Supervisor was not told about (Supervisor.Known): a name from a
// request, or from a foreign publisher. Label values stay bounded by what
// warren was configured with, however many names the traffic carries.
const Other = "_OTHER"

// ConfirmOutcome is what became of a publishing whose confirm a Publisher
// waited for.
type ConfirmOutcome string

// The outcomes of a wait for a publisher confirm.
const (
	// ConfirmAck: the broker took the publishing (basic.ack). A mandatory
	// publishing that came back is acknowledged too; Returned counts it.
	ConfirmAck ConfirmOutcome = "ack"
	// ConfirmNack: the broker did not take it (basic.nack).
	ConfirmNack ConfirmOutcome = "nack"
	// ConfirmLost: its channel or connection closed first.
	ConfirmLost ConfirmOutcome = "lost"
	// ConfirmTimeout: the waiter's deadline, or the Publisher's Timeout,
	// came first.
	ConfirmTimeout ConfirmOutcome = "timeout"
)

// CloseReason says why a subscription ended.
type CloseReason string

// The reasons a subscription ends.
const (
	// CloseOverflow: its client read too slowly (ErrOverflow).
	CloseOverflow CloseReason = "overflow"
	// CloseLost: the connection or the subscription's channel closed
	// under it.
	CloseLost CloseReason = "lost"
	// CloseEnded: its client or the gateway ended it.
	CloseEnded CloseReason = "ended"
)

// Metrics receives the core's events, for a metrics system: package
// metrics implements it on Prometheus. Set it in Config; nil counts
// nothing.
//
// The core calls each method at the one place its event happens, from the
// goroutine where it happens: an implementation is safe for concurrent use
// and never blocks. Every string argument is a bounded label value: a
// queue or exchange is a name the Supervisor knows (Known), Other, or ""
// where there is none (the default exchange; the queue of a publishing to
// another exchange, or a server-named queue); a connection is the
// Config.Name.
type Metrics interface {
	// Published: a Publisher's publishing, or a Client's request, was
	// sent to exchange, for queue when exchange is the default one.
	Published(exchange, queue string)
	// Confirmed: the wait for a Publisher's publishing's confirm ended
	// with outcome, d after the publishing was sent.
	Confirmed(exchange, queue string, outcome ConfirmOutcome, d time.Duration)
	// Returned: the broker returned a mandatory publishing that no queue
	// took (basic.return), to a Publisher or a Client.
	Returned(exchange, queue string)

	// CallPending: a Client's call to queue started (+1) or ended (-1).
	CallPending(queue string, delta int)
	// Replied: the reply that ends a Client's call to queue (for a
	// streaming call, its last) came, d after the request was sent.
	Replied(queue string, d time.Duration)
	// ReplyDropped: a reply matched no waiting call: an unknown or a
	// duplicate correlation id.
	ReplyDropped()

	// InFlight: a Consumer started (+1) or finished (-1) handling a
	// delivery of queue.
	InFlight(queue string, delta int)
	// Handled: a Consumer handled a delivery of queue in d; code is how
	// it ended (see SetOutcome).
	Handled(queue string, code codes.Code, d time.Duration)
	// Redelivered: a Consumer received a delivery of queue that the
	// broker had delivered before.
	Redelivered(queue string)
	// DeadLettered: a delivery of queue was rejected without requeueing:
	// dead-lettered when the queue has a dead-letter exchange, dropped
	// when not.
	DeadLettered(queue string)
	// Expired: a Server acknowledged a request of queue unanswered
	// because its deadline had passed.
	Expired(queue string)

	// SubscriptionOpened: a subscription to exchange (its first binding's)
	// or queue (a named one) began consuming.
	SubscriptionOpened(exchange, queue string)
	// SubscriptionClosed: that subscription ended, for reason.
	SubscriptionClosed(exchange, queue string, reason CloseReason)

	// ConnectionUp: conn is connected and every Component set up on it;
	// reconnect is false for the Supervisor's first connection.
	ConnectionUp(conn string, reconnect bool)
	// ConnectionDown: that connection is gone.
	ConnectionDown(conn string)
	// ConnectFailed: an attempt to connect, or to set the Components up,
	// failed.
	ConnectFailed(conn string)
	// Blocked: the broker blocked (true) or unblocked (false) conn's
	// publishers (connection.blocked).
	Blocked(conn string, active bool)
}

// NopMetrics counts nothing. Embed it in an implementation of Metrics
// that wants only some of the events.
type NopMetrics struct{}

func (NopMetrics) Published(string, string)                                {}
func (NopMetrics) Confirmed(string, string, ConfirmOutcome, time.Duration) {}
func (NopMetrics) Returned(string, string)                                 {}
func (NopMetrics) CallPending(string, int)                                 {}
func (NopMetrics) Replied(string, time.Duration)                           {}
func (NopMetrics) ReplyDropped()                                           {}
func (NopMetrics) InFlight(string, int)                                    {}
func (NopMetrics) Handled(string, codes.Code, time.Duration)               {}
func (NopMetrics) Redelivered(string)                                      {}
func (NopMetrics) DeadLettered(string)                                     {}
func (NopMetrics) Expired(string)                                          {}
func (NopMetrics) SubscriptionOpened(string, string)                       {}
func (NopMetrics) SubscriptionClosed(string, string, CloseReason)          {}
func (NopMetrics) ConnectionUp(string, bool)                               {}
func (NopMetrics) ConnectionDown(string)                                   {}
func (NopMetrics) ConnectFailed(string)                                    {}
func (NopMetrics) Blocked(string, bool)                                    {}

// meter is a Supervisor's Metrics, and the names it labels as themselves.
// The components hold it and call it where their events happen; with no
// Metrics configured, on is false and they skip the work around the calls
// (clocks, labels, the per-delivery record).
type meter struct {
	Metrics
	on bool

	mu    sync.Mutex
	known atomic.Pointer[map[string]struct{}] // copied on write
}

func newMeter(m Metrics) *meter {
	mt := &meter{Metrics: m, on: m != nil}
	if m == nil {
		mt.Metrics = NopMetrics{}
	}
	mt.known.Store(&map[string]struct{}{})
	return mt
}

// know adds names to those labelled as themselves.
func (m *meter) know(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.known.Load()
	next := make(map[string]struct{}, len(old)+len(names))
	for n := range old {
		next[n] = struct{}{}
	}
	for _, n := range names {
		if n != "" {
			next[n] = struct{}{}
		}
	}
	m.known.Store(&next)
}

// name is the label of a queue or exchange name: itself when known, ""
// when empty, Other otherwise.
func (m *meter) name(n string) string {
	if n == "" {
		return ""
	}
	if _, ok := (*m.known.Load())[n]; ok {
		return n
	}
	return Other
}

// dest is the exchange and queue labels of a publishing: the queue is the
// routing key only on the default exchange, which routes by queue name.
func (m *meter) dest(exchange, key string) (string, string) {
	if exchange == "" {
		return "", m.name(key)
	}
	return m.name(exchange), ""
}

// returned reports a basic.return of a publishing to exchange with
// routing key key.
func (m *meter) returned(exchange, key string) {
	if m.on {
		m.Returned(m.dest(exchange, key))
	}
}

// replied reports the reply that ends a call to queue (a label),
// published at sent.
func (m *meter) replied(queue string, sent time.Time) {
	if m.on {
		m.Replied(queue, time.Since(sent))
	}
}

// now is the time an event's duration starts from; zero when off.
func (m *meter) now() time.Time {
	if !m.on {
		return time.Time{}
	}
	return time.Now()
}

// confirmed reports the end of a wait for a confirm: WaitContext's
// answer on ch.
func (m *meter) confirmed(dest [2]string, sent time.Time, ack bool, err error, ch *amqp.Channel) {
	if !m.on {
		return
	}
	outcome := ConfirmAck
	switch {
	case err != nil:
		outcome = ConfirmTimeout
	case !ack && ch.IsClosed():
		outcome = ConfirmLost
	case !ack:
		outcome = ConfirmNack
	}
	m.Confirmed(dest[0], dest[1], outcome, time.Since(sent))
}

// A delivery is one delivery a Consumer handles, as its metrics see it:
// it stands in for the delivery's Acknowledger to see how it is settled,
// and rides in the DeliveryFunc's context for SetOutcome.
type delivery struct {
	amqp.Acknowledger
	mt    *meter
	queue string // label
	acked bool
	code  codes.Code
	set   bool // code was set by SetOutcome
}

func (d *delivery) Ack(tag uint64, multiple bool) error {
	d.acked = true
	return d.Acknowledger.Ack(tag, multiple)
}

func (d *delivery) Nack(tag uint64, multiple, requeue bool) error {
	if !requeue {
		d.mt.DeadLettered(d.queue)
	}
	return d.Acknowledger.Nack(tag, multiple, requeue)
}

func (d *delivery) Reject(tag uint64, requeue bool) error {
	if !requeue {
		d.mt.DeadLettered(d.queue)
	}
	return d.Acknowledger.Reject(tag, requeue)
}

// result is the code Handled counts the delivery under: the one
// SetOutcome gave, else OK when it was acknowledged and UNKNOWN when not.
func (d *delivery) result() codes.Code {
	switch {
	case d.set:
		return d.code
	case d.acked:
		return codes.OK
	}
	return codes.Unknown
}

type deliveryKey struct{}

// SetOutcome tells the Consumer whose DeliveryFunc runs under ctx how
// the work on its delivery ended: err is nil or an error whose code
// Status gives. The Consumer's metrics count the delivery under that
// code; without SetOutcome, a delivery counts as OK when it was
// acknowledged and UNKNOWN when it was not. Server calls it for every
// request; a DeliveryFunc of another kind calls it once it knows. The
// delivery's span, when tracing, ends with that status too. It does
// nothing when neither Metrics nor Tracing are configured.
func SetOutcome(ctx context.Context, err error) {
	if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
		d.code, d.set = status.Code(Status(err)), true
	}
}

// SetDeadLettered tells the Consumer whose DeliveryFunc runs under ctx
// that the DeliveryFunc dead-lettered its delivery itself (published it
// to a dead-letter queue, then acknowledged it), which the broker cannot
// tell the metrics as it tells them a rejection. It does nothing when no
// Metrics are configured.
func SetDeadLettered(ctx context.Context) {
	if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
		d.mt.DeadLettered(d.queue)
	}
}

// setCode is SetOutcome with the code.
func setCode(ctx context.Context, code codes.Code) {
	if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
		d.code, d.set = code, true
	}
}
