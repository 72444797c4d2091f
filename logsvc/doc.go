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
// bound and consumed from; messages emitted after that reach it. A
// subscription holds at most Config.Prefetch unacked deliveries and
// Config.StreamBuffer messages in the gateway. A client that reads more
// slowly than messages arrive loses the newest ones: each message carries
// in dropped the count lost just before it (reported with the next message
// that gets through). The broker keeps at most Config.MaxLength messages
// for a subscription the gateway itself cannot drain, dropping the oldest
// (uncounted). So one slow stream never slows the emitters or other
// streams, and memory stays bounded.
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
// ends every subscription and waits for the goroutines that move their
// deliveries, which end because the connection is closed. Each
// subscription has exactly two goroutines: the gRPC handler's, the only one
// that calls Send, and a pump that receives deliveries, acks them and hands
// them over through a channel of Config.StreamBuffer messages, never
// blocking on it. The handler starts the pump, closes its AMQP channel to
// stop it and waits for it before returning. A handler blocked in Send on a
// client that stopped reading returns when that client reads or its stream
// is cancelled (grpc.Server.Stop cancels every stream); Shutdown does not
// wait for it.
//
// Lock order: Service.mu, then publisher.mu; neither is held across a
// broker round trip except publisher.mu while replacing a dead channel.
package logsvc
