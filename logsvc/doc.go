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
// again when someone deleted one while the gateway runs. And one queue per
// subscription, which the core declares and deletes: exclusive,
// auto-delete, server-named, bound with the subscription's keys and
// limited to Config.MaxLength messages. A pika script and warren
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
// SubscribeLogs subscribes through a core.Subscriber and sends the
// QueueHeader response header once its queue is bound and consumed from;
// messages emitted after that reach it. Every message routed to the queue
// reaches the client, in order, or the stream ends with an error.
//
// Memory is bounded at both ends. The gateway holds at most
// Config.Prefetch deliveries per subscription: the core acknowledges a
// delivery only once it was handed to gRPC (stream.Send returned), so
// while a client reads slowly the backlog waits in the broker's queue,
// which is limited to Config.MaxLength messages with the drop-head
// overflow policy. While deliveries wait for the client the subscription
// asks the broker for the queue's length every Config.OverflowCheck, and
// once it reached MaxLength ends the stream with RESOURCE_EXHAUSTED and
// deletes the queue at once, even while the handler is blocked in Send. A
// burst shorter than MaxLength is absorbed; a client that falls further
// behind learns that it lost messages. The check is a sample: a queue that
// overflows and drains again between two checks loses messages
// unreported. Publishers are never nacked or slowed by a slow
// subscription (reject-publish would nack them), and other streams do not
// wait for it.
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
// returns, its queue and consumer are gone from the broker.
//
// # Concurrency contract
//
// A Service serves once a gateway attached it (gateway.New calls Attach
// and Register); from then on its methods are safe for concurrent use.
// Each subscription has exactly two goroutines: the gRPC handler's, the
// only one that calls stream.Send (inside core.Subscription.Stream), and
// the core's pump, which owns the subscription's AMQP channel and ends
// with the subscription, the stream's context or the connection. The
// exchanges' Component is called by the Supervisor's goroutine; a repair
// after a deleted exchange holds its lock across the broker round trips,
// so concurrent emits that noticed the same deletion wait for one repair.
package logsvc
