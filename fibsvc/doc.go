// Package fibsvc is warren.v1.FibonacciService, the RPC tutorial, on both
// sides of the broker.
//
// Service is the gateway side: a call becomes a request on the RPC queue
// (rpc_queue) whose body is the decimal text of n, through core.Client (a
// reply_to and a correlation_id, the deadline as expiration and header,
// no worker → UNAVAILABLE at once). Handler is the worker side, served by
// a core.Server (NewWorker): it answers the decimal text of fib(n), and a
// bad request with an error reply. Both are wire-compatible with the
// tutorial's rpc_client.py and rpc_server.py.
//
// Concurrency: Service's methods are safe for concurrent use once the
// gateway attached it; Handler is safe for concurrent use.
package fibsvc
