// Package tasksvc is warren.v1.TaskService, the Work Queues tutorial
// (new_task.py and worker.py), on both sides of the broker, on the AMQP
// core.
//
// Service is the gateway side (a gateway.Service): SubmitTask publishes a
// task, WatchTasks streams task lifecycle events, GetQueueStats reports
// the work queue's counts. Worker is the worker side (a worker.Worker): it
// consumes the work queue, runs a Handler per task, retries, dead-letters
// and publishes the lifecycle events.
//
// # What each side owns
//
// The gateway declares the events exchange (topic, durable; default
// "warren.task.events") and nothing else. The work queue (default
// "task_queue") and its dead-letter queue (the work queue's name +
// ".dead") belong to the workers, which declare them, and the events
// exchange, on every connection: durable quorum queues by default, as
// today's official tutorials declare task_queue, or durable classic ones
// (WorkerConfig.QueueType), as the older tutorials did. A submission while no worker ever
// declared the work queue is returned by the broker and fails with
// UNAVAILABLE at once: the gateway never creates a queue nobody consumes.
//
// # The wire contract
//
// A task is a persistent publishing through the default exchange to the
// work queue, mandatory, with content type text/plain, the task id as
// message_id and the request's body as body; the tutorial's new_task.py
// publishes the same without a message_id (the worker then names the task
// "task-<random>"). The task id is the request's idempotency key, or 32
// random hex digits; ids are at most MaxIDLen bytes. A task that failed is
// republished by the worker with header warren-attempt = the next attempt
// (a task without it is on attempt 1; on a quorum queue the broker's
// x-delivery-count adds to it); one that failed MaxAttempts times goes to
// the dead-letter queue with warren-attempt, warren-error (the last error)
// and warren-worker (the worker id).
//
// An event is a publishing to the events exchange with the task id as
// routing key, content type application/json and a protojson-encoded
// warren.v1.TaskEvent as body. A watcher's queue is bound with the task id
// (or "#" for every task, and for an id with topic wildcards, whose events
// the stream filters). The gateway publishes QUEUED; the worker STARTED,
// then SUCCEEDED, FAILED (an attempt failed; a retry follows) or
// DEAD_LETTERED. A watcher sees one task's events in that order: while
// anybody watches, the gateway publishes QUEUED, and waits for its
// confirm, before it publishes the task; the worker publishes its events
// from the task's goroutine on one channel, so they keep their order, and
// waits for FAILED's confirm before it publishes the retry's copy, whose
// STARTED (from any worker) comes after. The worker's other confirms are
// awaited in batches (at most 64 in flight), so events cost a busy worker
// no round trip of its own. If a task's publishing fails after its QUEUED
// event went out, the gateway publishes a FAILED event whose error begins
// "not submitted" (best effort). Events are best effort otherwise: a task
// never fails for its event.
//
// The gateway publishes QUEUED events only while somebody watches: every
// gateway with WatchTasks streams consumes the watchers queue (the
// exchange's name + ".watchers", which never holds a message) once, while
// it has any and for a second after its last (core.MuxConfig.Presence),
// and a
// submitting gateway reads its consumer count when the count it has is
// older than half a second (in the background; first, when it is older
// than a second). A watcher on another gateway may so miss the QUEUED
// events of its first half second. An idle gateway reads nothing.
//
// # Idempotency
//
// A SubmitTask with an idempotency key that succeeded within the last
// Config.IdempotencyWindow (10 minutes by default) publishes nothing and
// answers the same task id; a concurrent one with the same key waits for
// the first one's outcome, and after a failure (which records nothing)
// submits itself. The keys live in the memory of one gateway process:
// two gateways behind a load balancer do not share them, a restarted
// gateway has forgotten them, and at most Config.IdempotencyKeys are kept
// (the oldest go first). Across gateways a retried submission may still
// be queued twice; the worker sees the same task id on both.
//
// # Concurrency contract
//
// Service's methods are safe for concurrent use once a gateway attached
// it. SubmitTask and GetQueueStats never wait on the broker longer than
// their deadline, or Config.DefaultTimeout without one (publisher
// confirms, the passive declare of GetQueueStats). WatchTasks streams
// until the client cancels, the gateway shuts down or the connection is
// lost; the set-up of the gateway's watch queue, and the bind of a key
// no other stream holds, are broker round trips that amqp091-go cannot
// bound, so on a broker that stopped answering they wait until the
// heartbeat declares the connection dead. Every stream is a subscription
// on the Service's one core.Mux for the events exchange: its pump
// goroutine owns the AMQP channel, and each stream's gRPC handler
// goroutine is the only one that calls its Send. The Service's
// own Component (the events exchange, the watchers count) keeps one
// goroutine per connection that reads the count on demand, and one per
// GetQueueStats call in progress; Disconnected stops and waits for them.
//
// Worker consumes on one goroutine per connection and works one task at a
// time on it, whatever the prefetch; the core's Supervisor calls its
// Component, and Shutdown drains it: no new delivery is started, the
// running task finishes (or, when Shutdown's context ends first, is
// interrupted and requeued), what was delivered but not started is
// requeued, and nothing is consumed afterwards, even across reconnects.
// A Handler is called from that one goroutine only.
package tasksvc
