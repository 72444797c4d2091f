package logsvc

import (
	"log/slog"
	"time"

	"github.com/warrenrpc/warren/core"
)

// OverflowDropHead is the default x-overflow policy of a subscription's
// queue: at its length limit the broker drops the oldest message. The
// alternative, reject-publish, would nack the publishing, so one slow
// subscriber would fail the emitters of every other subscriber's messages.
const OverflowDropHead = "drop-head"

// The tutorials' exchanges, LogService's defaults.
const (
	DefaultFanoutExchange = "logs"        // Publish/Subscribe
	DefaultDirectExchange = "direct_logs" // Routing
	DefaultTopicExchange  = "topic_logs"  // Topics
)

// Config configures a Service. The zero value uses the tutorials' exchanges
// and the defaults documented on each field.
type Config struct {
	// FanoutExchange is the fanout exchange of LOG_EXCHANGE_FANOUT.
	// Default: "logs" (Publish/Subscribe tutorial).
	FanoutExchange string
	// DirectExchange is the direct exchange of LOG_EXCHANGE_DIRECT.
	// Default: "direct_logs" (Routing tutorial).
	DirectExchange string
	// TopicExchange is the topic exchange of LOG_EXCHANGE_TOPIC.
	// Default: "topic_logs" (Topics tutorial).
	TopicExchange string

	// Prefetch is the basic.qos prefetch count of each exchange's one
	// consumer (core.MuxConfig.Prefetch): the deliveries the broker sends
	// before it waits for an acknowledgement. A delivery is acknowledged
	// once it is in the buffer of every subscription it matches.
	// Default: 1024.
	Prefetch int
	// MaxLength bounds the messages one subscription holds in the gateway
	// while its client reads slowly: one more ends that subscription with
	// RESOURCE_EXHAUSTED, and no other. Default: 10000.
	MaxLength int
	// Overflow was the x-overflow policy of each subscription's own queue.
	//
	// Deprecated: subscriptions share one queue per exchange, and a slow
	// one overflows its buffer in the gateway (MaxLength); Overflow is
	// ignored.
	Overflow string
	// OverflowCheck was how often the gateway asked the broker for the
	// length of a subscription's own queue.
	//
	// Deprecated: a subscription's backlog is in the gateway, where its
	// overflow is seen at once; OverflowCheck is ignored.
	OverflowCheck time.Duration
	// MaxBindingKeys bounds the binding keys of one subscription.
	// Default: 64.
	MaxBindingKeys int

	// DefaultTimeout bounds the wait for the broker's publisher confirm of
	// an emit whose call has no deadline (core.PublisherConfig.Timeout);
	// a broker that stops confirming makes such emits fail with
	// UNAVAILABLE after it. Default: 10s.
	DefaultTimeout time.Duration
	// EmitWindow is the count of unconfirmed messages one EmitLogs stream
	// may have in flight: it publishes ahead and waits for the oldest
	// confirm only when the window is full. Default: 512.
	EmitWindow int

	// History keeps each exchange's messages in a RabbitMQ stream, from
	// which SubscribeLogs may start in the past and resume. Default: off.
	History History

	// Logger receives the exchanges' events (one used as it is, one
	// declared again). Default: the Supervisor's logger.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.FanoutExchange == "" {
		c.FanoutExchange = DefaultFanoutExchange
	}
	if c.DirectExchange == "" {
		c.DirectExchange = DefaultDirectExchange
	}
	if c.TopicExchange == "" {
		c.TopicExchange = DefaultTopicExchange
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 1024
	}
	if c.MaxLength <= 0 {
		c.MaxLength = 10000
	}
	if c.Overflow == "" {
		c.Overflow = OverflowDropHead
	}
	if c.OverflowCheck <= 0 {
		c.OverflowCheck = time.Second
	}
	if c.MaxBindingKeys <= 0 {
		c.MaxBindingKeys = 64
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 10 * time.Second
	}
	if c.EmitWindow <= 0 {
		c.EmitWindow = 512
	}
	if c.History.MaxAge == 0 {
		c.History.MaxAge = DefaultHistoryMaxAge
	}
	if c.History.MaxBytes == 0 {
		c.History.MaxBytes = DefaultHistoryMaxBytes
	}
	if c.History.SegmentBytes == 0 {
		c.History.SegmentBytes = DefaultHistorySegmentBytes
	}
	if c.History.DirectKeys == nil {
		c.History.DirectKeys = DefaultHistoryDirectKeys
	}
	return c
}

// HistorySuffix makes the name of an exchange's history stream: the
// exchange's name and ".history" (logs.history, topic_logs.history).
const HistorySuffix = ".history"

// History's defaults.
const (
	DefaultHistoryMaxAge       = 24 * time.Hour
	DefaultHistoryMaxBytes     = 1 << 30  // 1 GiB per exchange
	DefaultHistorySegmentBytes = 64 << 20 // the unit retention deletes
)

// DefaultHistoryDirectKeys are the keys a direct exchange's history is
// bound with from the start: the Routing tutorial's severities.
var DefaultHistoryDirectKeys = []string{"info", "warning", "error"}

// History configures the exchanges' log history: one RabbitMQ stream per
// exchange (x-queue-type: stream), named after it (HistorySuffix), bound so
// that it gets every message emitted to the exchange, by warren or by
// anyone else (see core.HistoryConfig), and carrying the gateway's
// subscriptions, so that every message streamed has its offset. The
// streams are durable and shared by the gateways that use the same
// exchanges, which must configure them alike.
type History struct {
	// Enabled turns the history on.
	Enabled bool
	// MaxAge is how long the stream keeps messages (x-max-age, to the
	// second; retention deletes whole segments). Default: 24h; negative:
	// no limit.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size (x-max-length-bytes). Default:
	// 1 GiB; negative: no limit.
	MaxBytes int64
	// SegmentBytes is the size of the stream's segment files, the unit in
	// which retention deletes (x-stream-max-segment-size-bytes).
	// Default: 64 MiB.
	SegmentBytes int64
	// DirectKeys are the keys a direct exchange's stream is bound with from
	// the start; a key a subscription asks for is bound when it first does
	// (its history starts then) and stays bound. Default: info, warning,
	// error.
	DirectKeys []string
}

// core is the HistoryConfig of the exchange's stream, or nil when off.
func (h History) core(exchange string) *core.HistoryConfig {
	if !h.Enabled {
		return nil
	}
	return &core.HistoryConfig{
		Stream:       exchange + HistorySuffix,
		MaxAge:       max(h.MaxAge, 0),
		MaxBytes:     max(h.MaxBytes, 0),
		SegmentBytes: max(h.SegmentBytes, 0),
		Keys:         h.DirectKeys,
	}
}
