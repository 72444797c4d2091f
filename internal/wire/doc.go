// Package wire defines what warren puts on the AMQP wire beyond the
// tutorials' bodies: the header that carries a call's absolute deadline, and
// the headers that carry a worker's error back to the caller as data.
//
// The bodies themselves stay exactly the tutorials' (the decimal text of n,
// the decimal text of fib(n)), so a client or server that knows nothing of
// these headers still interoperates: it simply ignores them.
//
// Everything here is pure functions over amqp091-go types; it is safe for
// concurrent use.
package wire
