// Package logsvc implements warren.v1.LogService: the Publish/Subscribe,
// Routing and Topics tutorials (emit_log*.py, receive_logs*.py) behind gRPC.
//
// It owns the three log exchanges, `logs` (fanout), `direct_logs` (direct)
// and `topic_logs` (topic), which it declares on every connection exactly as
// the tutorials do (non-durable; one that exists with other properties is
// used as it is), and one queue per subscription: exclusive, auto-delete,
// server-named, bound with the subscription's keys and limited to
// Config.MaxLength messages. A pika script and warren interoperate on the
// same exchanges.
//
// # Emits
//
// EmitLog and EmitLogs publish with publisher confirms on one shared
// confirm-mode channel and answer only after the broker confirmed: an OK
// means the broker routed the message (to no queue, if nobody subscribed:
// that is how the tutorials' exchanges behave). EmitLogs keeps up to
// Config.EmitWindow messages unconfirmed, so a stream runs at the broker's
// pace rather than one round trip per message.
//
// # Subscriptions
//
// SubscribeLogs sends the QueueHeader response header once its queue is
// bound and consumed from; messages emitted after that reach it. Every
// message routed to the queue reaches the client, in order, or the stream
// ends with RESOURCE_EXHAUSTED.
//
// Memory is bounded at both ends. The gateway holds at most
// Config.Prefetch unacked deliveries plus Config.StreamBuffer messages per
// subscription; when the buffer is full it stops taking deliveries, and the
// backlog waits in the broker's queue, which is limited to
// Config.MaxLength messages with the drop-head overflow policy. The
// gateway asks the broker for the queue's length while the buffer is full
// (every Config.OverflowCheck), and once it reached MaxLength ends the
// stream with RESOURCE_EXHAUSTED and deletes the queue at once. A burst
// shorter than MaxLength is absorbed; a client that falls further behind
// learns that it lost messages. One case is only sampled: when the gateway
// itself (not the client) falls behind, it checks at most every
// OverflowCheck while deliveries flow, and a queue that overflows and
// drains again between two checks loses messages unreported. Publishers are never nacked or slowed by a
// slow subscription (reject-publish would nack them), and other streams do
// not wait for it.
//
// A subscription ends with CANCELLED when the client cancels, with
// UNAVAILABLE when the broker connection is lost or Shutdown is called,
// and with INVALID_ARGUMENT for bad binding keys. When its handler returns,
// its queue and consumer are gone from the broker.
//
// # Concurrency contract
//
// Service's methods are safe for concurrent use. An amqpx.Supervisor calls
// Connected and Disconnected, alternately, from one goroutine; Disconnected
// ends every subscription and waits for their pumps (below), which end
// promptly because the connection is closed. Each subscription has exactly
// two goroutines: the gRPC handler's, the only one that calls Send, and a
// pump that owns the subscription's AMQP channel. The pump receives
// deliveries, hands them to the handler through a channel of
// Config.StreamBuffer messages, acks them, and when the subscription ends
// (for any reason) deletes the queue, closes the AMQP channel and closes
// the hand-over channel. The handler starts the pump and waits for it
// before returning. A handler blocked in Send on a client that stopped
// reading returns when that client reads or its stream is cancelled
// (grpc.Server.Stop cancels every stream); its pump has already released
// the broker's resources by then. Shutdown does not wait for handlers;
// grpc.Server.GracefulStop does.
//
// Locks: Service.mu and publisher.mu are never held together;
// publisher.mu is held across broker round trips only while a dead
// publishing channel is replaced.
package logsvc
