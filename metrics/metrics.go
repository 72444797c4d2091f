package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/core"
)

// buckets are the histograms' upper bounds, in seconds: from half a
// millisecond (a confirm on an idle local broker) to ten seconds (the
// default deadline).
var buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics is warren's Prometheus metrics: the AMQP core's events
// (core.Metrics) and the gateway's gRPC server metrics. It is a
// prometheus.Collector; New registers it. One Metrics serves a whole
// process: the gateway (gateway.Config.Metrics) and the workers
// (worker.Config's AMQP.Metrics) of warren dev share it.
//
// Its methods are safe for concurrent use and never block.
type Metrics struct {
	grpc *grpcMetrics

	published, confirms, returned             *prometheus.CounterVec
	confirmSeconds, replySeconds              *prometheus.HistogramVec
	pending                                   *prometheus.GaugeVec
	dropped                                   prometheus.Counter
	inFlight                                  *prometheus.GaugeVec
	handled, redelivered, deadLettered, expir *prometheus.CounterVec
	handlingSeconds                           *prometheus.HistogramVec
	subsOpen                                  *prometheus.GaugeVec
	subsClosed                                *prometheus.CounterVec
	up, blocked                               *prometheus.GaugeVec
	reconnects, connectFailures, blocks       *prometheus.CounterVec

	// The series of the events of every call and delivery, by their
	// label values (children).
	publishedC, confirmsC, handledC           *children[prometheus.Counter]
	confirmSecondsC, replySecondsC, handlingC *children[prometheus.Observer]
	pendingC, inFlightC                       *children[prometheus.Gauge]

	all []prometheus.Collector
}

var _ core.Metrics = (*Metrics)(nil)

// New returns warren's metrics, registered with reg (none when reg is
// nil: register the Metrics, a prometheus.Collector, yourself).
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{grpc: newGRPCMetrics()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.all = append(m.all, v)
		return v
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.all = append(m.all, v)
		return v
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		m.all = append(m.all, v)
		return v
	}
	m.all = append(m.all, m.grpc.server)

	m.published = counter("warren_amqp_published_total",
		"Publishings sent: a publisher's, confirmed, or an RPC client's request. queue is set for the default exchange, which routes by queue name.",
		"exchange", "queue")
	m.confirms = counter("warren_amqp_confirms_total",
		"Waits for a publisher confirm, by how they ended: ack, nack, lost (the channel or connection closed first) or timeout.",
		"exchange", "queue", "outcome")
	m.confirmSeconds = histogram("warren_amqp_confirm_seconds",
		"Time from a publishing to the broker's ack or nack, as the publisher saw it.",
		"exchange", "queue")
	m.returned = counter("warren_amqp_returned_total",
		"Mandatory publishings the broker returned because no queue took them (unroutable).",
		"exchange", "queue")
	m.pending = gauge("warren_amqp_calls_pending",
		"RPC calls whose request was sent and whose reply has not come.",
		"queue")
	m.replySeconds = histogram("warren_amqp_reply_seconds",
		"Time from an RPC request to the reply that ends its call (for a stream, its last).",
		"queue")
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "warren_amqp_replies_dropped_total",
		Help: "Replies that matched no waiting call: an unknown or a duplicate correlation id.",
	})
	m.all = append(m.all, m.dropped)
	m.inFlight = gauge("warren_worker_in_flight",
		"Deliveries a worker is handling.",
		"queue")
	m.handled = counter("warren_worker_handled_total",
		"Deliveries a worker handled, by the gRPC code of the outcome.",
		"queue", "code")
	m.handlingSeconds = histogram("warren_worker_handling_seconds",
		"Time a worker took to handle a delivery, its reply and acknowledgement included.",
		"queue")
	m.redelivered = counter("warren_worker_redelivered_total",
		"Deliveries a worker received that the broker had delivered before.",
		"queue")
	m.deadLettered = counter("warren_worker_dead_lettered_total",
		"Deliveries a worker rejected without requeueing them: dead-lettered when the queue has a dead-letter exchange, dropped when not.",
		"queue")
	m.expir = counter("warren_worker_expired_total",
		"Requests a worker acknowledged unanswered because their deadline had passed.",
		"queue")
	m.subsOpen = gauge("warren_amqp_subscriptions_open",
		"Open subscriptions (gRPC streams consuming a queue), by their exchange, or their queue when it is a named one.",
		"exchange", "queue")
	m.subsClosed = counter("warren_amqp_subscriptions_closed_total",
		"Subscriptions that ended, by reason: overflow (the client read too slowly), lost (connection or channel) or ended (by the client or the gateway).",
		"exchange", "queue", "reason")
	m.up = gauge("warren_amqp_connection_up",
		"1 while the broker connection is up and set up, 0 when not.",
		"connection")
	m.blocked = gauge("warren_amqp_connection_blocked",
		"1 while the broker blocks the connection's publishers (a resource alarm), 0 when not.",
		"connection")
	m.blocks = counter("warren_amqp_blocked_total",
		"Times the broker blocked the connection's publishers.",
		"connection")
	m.reconnects = counter("warren_amqp_reconnects_total",
		"Connections set up after the first one was lost.",
		"connection")
	m.connectFailures = counter("warren_amqp_connect_failures_total",
		"Attempts to connect (or to set up on a new connection) that failed.",
		"connection")

	m.publishedC = newChildren(2, m.published.WithLabelValues)
	m.confirmsC = newChildren(3, m.confirms.WithLabelValues)
	m.handledC = newChildren(2, m.handled.WithLabelValues)
	m.confirmSecondsC = newChildren(2, m.confirmSeconds.WithLabelValues)
	m.replySecondsC = newChildren(1, m.replySeconds.WithLabelValues)
	m.handlingC = newChildren(1, m.handlingSeconds.WithLabelValues)
	m.pendingC = newChildren(1, m.pending.WithLabelValues)
	m.inFlightC = newChildren(1, m.inFlight.WithLabelValues)

	if reg != nil {
		if err := reg.Register(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
}

// The core.Metrics methods.

func (m *Metrics) Published(exchange, queue string) {
	m.publishedC.with(labels{exchange, queue}).Inc()
}

func (m *Metrics) Confirmed(exchange, queue string, outcome core.ConfirmOutcome, d time.Duration) {
	m.confirmsC.with(labels{exchange, queue, string(outcome)}).Inc()
	if outcome == core.ConfirmAck || outcome == core.ConfirmNack {
		m.confirmSecondsC.with(labels{exchange, queue}).Observe(d.Seconds())
	}
}

func (m *Metrics) Returned(exchange, queue string) {
	m.returned.WithLabelValues(exchange, queue).Inc()
}

func (m *Metrics) CallPending(queue string, delta int) {
	m.pendingC.with(labels{queue}).Add(float64(delta))
}

func (m *Metrics) Replied(queue string, d time.Duration) {
	m.replySecondsC.with(labels{queue}).Observe(d.Seconds())
}

func (m *Metrics) ReplyDropped() { m.dropped.Inc() }

func (m *Metrics) InFlight(queue string, delta int) {
	m.inFlightC.with(labels{queue}).Add(float64(delta))
}

func (m *Metrics) Handled(queue string, code codes.Code, d time.Duration) {
	m.handledC.with(labels{queue, code.String()}).Inc()
	m.handlingC.with(labels{queue}).Observe(d.Seconds())
}

func (m *Metrics) Redelivered(queue string) { m.redelivered.WithLabelValues(queue).Inc() }

func (m *Metrics) DeadLettered(queue string) { m.deadLettered.WithLabelValues(queue).Inc() }

func (m *Metrics) Expired(queue string) { m.expir.WithLabelValues(queue).Inc() }

func (m *Metrics) SubscriptionOpened(exchange, queue string) {
	m.subsOpen.WithLabelValues(exchange, queue).Inc()
}

func (m *Metrics) SubscriptionClosed(exchange, queue string, reason core.CloseReason) {
	m.subsOpen.WithLabelValues(exchange, queue).Dec()
	m.subsClosed.WithLabelValues(exchange, queue, string(reason)).Inc()
}

func (m *Metrics) ConnectionUp(conn string, reconnect bool) {
	m.up.WithLabelValues(conn).Set(1)
	if reconnect {
		m.reconnects.WithLabelValues(conn).Inc()
	}
}

func (m *Metrics) ConnectionDown(conn string) {
	m.up.WithLabelValues(conn).Set(0)
	m.blocked.WithLabelValues(conn).Set(0) // a block belongs to its connection
}

func (m *Metrics) ConnectFailed(conn string) {
	m.up.WithLabelValues(conn).Set(0)
	m.connectFailures.WithLabelValues(conn).Inc()
}

func (m *Metrics) Blocked(conn string, active bool) {
	if active {
		m.blocked.WithLabelValues(conn).Set(1)
		m.blocks.WithLabelValues(conn).Inc()
		return
	}
	m.blocked.WithLabelValues(conn).Set(0)
}
