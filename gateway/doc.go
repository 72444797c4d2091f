// Package gateway is warren's gRPC gateway: it serves warren.v1's services
// (plus gRPC health and reflection) and turns each call into AMQP 0-9-1
// traffic on RabbitMQ.
//
// FibonacciService is RPC over a queue, as in the tutorial: a call becomes a
// request on the RPC queue (rpc_queue) whose body is the decimal text of n,
// with reply_to and a correlation_id; one consumer per gateway receives all
// replies (on a gateway-owned reply queue by default, or through direct
// reply-to) and a pending-call table routes each to its call. The call's deadline travels as the message's
// expiration and as an absolute deadline header; a worker's error comes back
// as data (headers) and becomes the gRPC status the worker chose. With no
// worker on the queue a call fails with UNAVAILABLE at once.
//
// TaskService publishes persistent tasks to the durable task queue and
// answers after the broker's publisher confirm; QueueService is the Hello
// World tutorial's named queue; LogService (package logsvc) is served here
// too. All of them share the gateway's one supervised broker connection.
//
// Errors are mapped to gRPC status codes once, at the service boundary:
// context errors to CANCELLED / DEADLINE_EXCEEDED, a missing broker, queue
// or worker to UNAVAILABLE, a worker's error reply to its own code.
//
// Metrics (Config.Metrics, package metrics) are installed once, in New: the
// gRPC server metrics as the outermost interceptors, and the core's for
// every service on the gateway's Supervisor. The access log
// (Config.AccessLog) is installed once too, inside the metrics and outside
// the error boundary: one line per call with the status the caller got and
// the ids the core noted on it (core.NoteCall). Shutdown logs what its
// drain waits for.
//
// Security is installed once too: Config.TLS (NewTLS reloads its files)
// makes the port TLS-only, and Config.Auth (package auth) authenticates and
// authorizes every call inside the metrics' interceptors and scopes the
// routing and binding keys the core uses for it; Serve runs its file
// watcher.
//
// Concurrency contract: a Server is safe for concurrent use by any number of
// gRPC calls; the request/reply hot path takes no lock of its own beyond the
// pending-call table's. Serve runs once; it owns the broker connection's
// supervisor goroutine and the gRPC server, and returns only after both have
// stopped. Health reports SERVING only while the gateway holds a working
// broker connection.
package gateway
