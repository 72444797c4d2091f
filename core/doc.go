// Package core is warren's AMQP core: everything that speaks AMQP 0-9-1 to
// RabbitMQ, once, for every service of the gateway and every worker.
//
//   - Supervisor keeps one connection up: it dials the configured URLs in
//     turn, hands each new connection (a *Conn) to its Components, and when
//     the connection is lost tells them so, waits a jittered exponential
//     backoff and dials again, without limit, until its context ends.
//     amqps:// URLs use Config.TLS and log in as Config.Auth says (PLAIN,
//     or EXTERNAL with a client certificate); a failed dial is explained
//     (DialError) in the log line of each attempt.
//   - Publisher publishes with publisher confirms on a pool of channels.
//   - Mux carries every subscription to one exchange on one queue and one
//     consumer: bindings counted by key (bound for the first subscription,
//     unbound after the last), each delivery handed to the bounded buffer of
//     every subscription whose key matches (MatchKey), then acknowledged.
//   - Subscriber and Subscription consume a queue for one client (a gRPC
//     stream): a pump that owns its channel, a bounded buffer, an
//     acknowledgement only after the hand-off.
//   - Client is the request/reply client (reply queue or direct reply-to,
//     a pending-call table, deadlines on the wire, fail-fast presence).
//   - Server is the worker side of request/reply: a Handler per request,
//     like net/http's, errors sent back as data.
//   - Inspector asks the broker about queues and exchanges (passive
//     declares), each question bounded by the caller's deadline.
//   - Status maps every error of the core, and of the handlers built on
//     it, to a gRPC status, in one place.
//   - CheckScope asks the KeyGuard a call's context carries (package auth
//     puts one there) whether the call may use a routing or binding key;
//     Publisher and Subscriber ask it before anything reaches the broker.
//   - Metrics (Config.Metrics) hears what every component does, each
//     event from the one place it happens, with queue and exchange labels
//     bounded by the names the Supervisor knows (Known); package metrics
//     implements it on Prometheus.
//   - CallInfo is the record of one gRPC call that the gateway's access
//     log reads: the core notes on it (NoteCall) the ids it makes, such as
//     a Client's correlation ids.
//   - Tracing (Config.Tracing) traces every publishing and delivery with
//     OpenTelemetry: a producer span that writes its context into the
//     publishing's headers (W3C traceparent, tracestate, baggage), a
//     consumer span that reads it back, replies and subscriptions' deliveries
//     linked to what they answer or carry (see Tracing).
//
// Components are built on a Supervisor before it runs (NewPublisher,
// NewMux, NewSubscriber, NewClient, NewServer, NewInspector add themselves to it
// as Components),
// so they follow its connection: they fail fast with ErrNotConnected
// while there is none, fail what was waiting with ErrConnectionLost when
// it goes, and serve again on the next one. The broker's blocked state
// (a memory or disk alarm) belongs to the connection (Conn.Blocked), so it
// never outlives it.
//
// Concurrency contract: Supervisor.Run blocks and is called once. The
// Components' Connected and Disconnected methods are called from Run's
// goroutine, one at a time, in a strict alternation (Connected,
// Disconnected, Connected, ...); Disconnected is called only after a
// Connected that returned nil. A Component that starts goroutines on a
// connection makes them end when the connection closes (amqp091-go closes
// every consumer's delivery channel then) and waits for them in
// Disconnected. The connection-level notification channels (close,
// blocked) are drained by Run itself; every channel-level one (returns,
// close) by a goroutine of the component that asked for it. Publish, Call,
// Subscribe and Stream never wait longer than their context's deadline or
// their component's timeout. Exactly one goroutine may call a
// Subscription's (or MuxSubscription's) Stream; everything else is safe
// for concurrent use.
//
// A channel exception (a 404 or 406) kills a channel: the publishing pool
// opens a new one on next use (chanPool, the one place that reopens
// channels), and a subscription whose channel dies ends with an error.
package core
