// Package logsvc is warren.v1.LogService: the Publish/Subscribe, Routing
// and Topics tutorials (emit_log*.py, receive_logs*.py) behind gRPC, as a
// gateway.Service on warren's AMQP core.
//
// # What it owns
//
// The three log exchanges, `logs` (fanout), `direct_logs` (direct) and
// `topic_logs` (topic), which a Component of the package declares on every
// connection exactly as the tutorials do (non-durable; one that exists
// with other properties is used as it is, with a warning), and declares
// again when someone deleted one while the gateway runs. And one core.Mux
// per exchange: one queue (exclusive, auto-delete, server-named) and one
// consumer that every subscription to the exchange shares, bound with the
// union of their keys. A pika script and warren
// interoperate on the same exchanges. Everything else (channels,
// publisher confirms, consumers, acknowledgements, reconnection) is the
// core's: the package opens no channel but the short-lived ones that
// declare its exchanges.
//
// # Emits
//
// EmitLog and EmitLogs publish through a core.Publisher with one
// confirm-mode channel, not mandatory, and answer only after the broker
// confirmed: an OK means the broker routed the message (to no queue, if
// nobody subscribed: that is how the tutorials' exchanges behave). One
// channel keeps every emit in the order it was made. EmitLogs keeps up to
// Config.EmitWindow messages unconfirmed (PublishDeferred, then
// Confirmation.Wait oldest first), so a stream runs at the broker's pace
// rather than one round trip per message; it answers with the count, or
// with an error that says how many were confirmed before the failure. A
// publishing to a deleted exchange (the broker closes the channel with 404)
// makes the exchanges be declared again; EmitLog then publishes once more.
//
// # Subscriptions
//
// SubscribeLogs subscribes on the exchange's core.Mux and sends the
// QueueHeader response header once its keys are bound; messages emitted
// after that reach it. The Mux hands each delivery to every subscription
// with a matching key (core.MatchKey) and acknowledges it once it is in
// all their buffers. Every message whose routing key matches reaches the
// client, in the order the broker delivered it, or the stream ends with an
// error.
//
// Memory is bounded: a subscription holds at most Config.MaxLength
// messages in the gateway while its client reads slowly; one more ends
// it with RESOURCE_EXHAUSTED at once (the consumer never waits for a
// client), so publishers and other streams are never slowed by it. A
// gateway crash loses what its buffers held: delivery to subscribers is
// at most once, and their streams end.
//
// # History
//
// With Config.History on, each exchange's messages are also kept in a
// RabbitMQ stream, <exchange>.history (core.HistoryConfig), and the
// exchange's Mux reads that stream instead of a queue of its own, so that
// every message streamed carries its offset. A request with a start
// (first, last, an offset, a time) subscribes with core.Mux.SubscribeFrom:
// a consumer of the stream of its own, from there on, at the client's
// pace, until it caught up and joins the exchange's one consumer. A
// subscription that falls behind reads on from the history instead of
// ending with RESOURCE_EXHAUSTED. A client that lost its stream
// resumes with its last offset plus one, on any gateway, and misses
// nothing. A start the history cannot honour is OUT_OF_RANGE
// (core.OffsetError); a start without history is FAILED_PRECONDITION
// (core.ErrHistoryOff).
//
// # Errors
//
// Handlers return Go errors; the gateway's interceptors turn them into
// gRPC statuses with core.Status, in one place. Bad input (an unknown
// exchange, a key over 255 bytes, a topic binding key with a wildcard
// inside a word, too many keys) is INVALID_ARGUMENT (core.Argumentf),
// checked before anything reaches the broker. The core's sentinels give
// the rest: no connection (core.ErrNotConnected), a connection or channel
// lost before the confirm (core.ErrConnectionLost) and a nack are
// UNAVAILABLE; a broker that blocks publishing (core.ErrBlocked) and a
// subscription that overflowed (core.ErrOverflow) are RESOURCE_EXHAUSTED;
// a client's cancel is CANCELLED. A subscription ends with UNAVAILABLE
// when the broker connection is lost or the gateway shuts down (the
// gateway cancels every stream with gateway.ErrShutdown). When its handler
// returns, its keys no other subscription holds are unbound (after
// core.MuxConfig.Linger).
//
// # Concurrency contract
//
// A Service serves once a gateway attached it (gateway.New calls Attach
// and Register); from then on its methods are safe for concurrent use.
// Each subscription has gRPC's handler goroutine, which waits for the
// deliveries in core.MuxSubscription.Stream; before that, it waits for a
// short-lived goroutine that receives the request, subscribes and sends
// the header; and while the subscription has messages to send, a sender
// goroutine, the only one that sends them, which the handler waits for
// before it returns (handler.go says why: an idle stream's stack). Each
// exchange's Mux has one pump, which owns its consumer's channel and ends
// with the connection. The
// exchanges' Component is called by the Supervisor's goroutine; a repair
// after a deleted exchange holds its lock across the broker round trips,
// so concurrent emits that noticed the same deletion wait for one repair.
package logsvc
