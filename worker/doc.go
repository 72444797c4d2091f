// Package worker holds warren's AMQP workers: the consumers that do the work
// behind the gateway's calls. Each worker is an amqpx.Handler; an
// amqpx.Supervisor gives it a connection and gives it a new one after a
// loss, so a worker keeps serving across broker restarts.
//
// Fibonacci consumes the RPC queue (rpc_queue) exactly as the tutorial's
// rpc_server.py does, and more: manual acknowledgements after the reply is
// published, a configurable prefetch, several handler goroutines, the
// caller's deadline honoured, and every bad request answered with an error
// reply instead of a crash. Run more workers (in this process or others) to
// scale: they compete for the queue.
//
// Task consumes the work queue (task_queue) as the tutorial's worker.py
// does: prefetch 1 (fair dispatch), one unit of work per "." in the body,
// acknowledgement only after the work is done, bounded retries counted by
// the worker itself, then the dead-letter queue; it publishes each task's
// lifecycle events for TaskService.WatchTasks.
//
// Concurrency contract: a worker's goroutines are started by Connected and
// end when the connection's delivery channel closes; Disconnected waits for
// them. Shutdown stops consuming, lets the goroutines finish the deliveries
// they hold (acknowledging each only after its reply was published) and
// waits; deliveries never handled are requeued by the broker.
package worker
