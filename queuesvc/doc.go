// Package queuesvc is warren.v1.QueueService, the Hello World tutorial: Send
// publishes a message to a named queue ("hola" by default) and answers
// after the broker's confirm; Receive consumes the queue as a stream.
//
// Queues are declared as the tutorial's send.py and receive.py declare
// them (plain: not durable, not exclusive, no auto-delete), by the call
// that names them, and stay on the broker: they are the caller's, not the
// gateway's. A queue that exists with other properties (today's official
// tutorials declare a durable quorum queue) is used as it is.
//
// Concurrency: the Service's methods are safe for concurrent use once a
// gateway attached it. Each Receive stream owns one channel (a
// core.Subscription); several streams on one queue compete for its
// messages, one unacknowledged message each by default.
package queuesvc
