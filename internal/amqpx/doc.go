// Package amqpx keeps an AMQP 0-9-1 connection to RabbitMQ up for the parts
// of warren that need one.
//
// A Supervisor dials the configured URLs in turn, hands every new connection
// to its Handlers (which declare their topology and start their consumers on
// it), and when the connection is lost tells the Handlers so, waits a
// jittered exponential backoff and dials again, without limit, until its
// context ends.
//
// Concurrency contract: Run blocks and is called once. The Handlers'
// Connected and Disconnected methods are called from Run's goroutine, one at
// a time, in a strict alternation (Connected, Disconnected, Connected, ...);
// Disconnected is called only after a Connected that returned nil. A Handler
// that starts goroutines on a connection must make them end when the
// connection closes (amqp091-go closes every consumer's delivery channel
// then), and wait for them in Disconnected. The connection-level
// notification channels (close, blocked) are drained by Run itself.
package amqpx
