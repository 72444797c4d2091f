// Package metrics is warren's Prometheus metrics, built on
// github.com/prometheus/client_golang.
//
// Metrics implements core.Metrics: set it as the core.Config's Metrics of
// a Supervisor (gateway.Config.Metrics does that for the gateway, and
// worker.Config's AMQP.Metrics for the workers) and every component of the
// core counts what it does, for every service built on it, with no code
// in the services: publishings and their confirms, returns, RPC calls
// pending and their reply latency, dropped replies, the workers'
// deliveries (handled by code, in flight, handling time, redelivered,
// dead-lettered, expired), subscriptions, and the broker connection (up,
// blocked, reconnects). Metrics also carries the gateway's gRPC server
// metrics, the ecosystem's (go-grpc-middleware's Prometheus provider:
// grpc_server_started_total, grpc_server_handled_total,
// grpc_server_handling_seconds), which gateway.New installs as
// interceptors.
//
// Label values stay bounded whatever the traffic: a queue or exchange
// label is a name warren was configured with (core.Supervisor.Known),
// else "_OTHER"; a gRPC method is one a service registered, else
// "_OTHER"; no label ever carries a message, task or correlation id, a
// routing key or a request's queue name.
//
// Handler serves a registry at /metrics (and, when asked, the runtime
// profiles at /debug/pprof/); Serve runs it until its context ends.
//
// Concurrency contract: Metrics is safe for concurrent use, and its
// methods never block beyond the short locks of client_golang's metric
// vectors. Serve owns its HTTP server and returns only after it stopped.
package metrics
