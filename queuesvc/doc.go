// Package queuesvc is warren.v1.QueueService, the Hello World tutorial: Send
// publishes a message to a named queue ("hola" by default) and answers
// after the broker's confirm; Receive consumes the queue as a stream.
//
// Queues are declared as the tutorial's send.py and receive.py declare
// them, by the call that names them, and stay on the broker: they are the
// caller's, not the gateway's. By default that is a durable quorum queue,
// as today's official tutorials declare; Config.QueueType
// core.QueueClassic declares a plain classic one (not durable, not
// exclusive, no auto-delete), as the older tutorials did. A queue that
// exists with other properties is used as it is.
//
// Concurrency: the Service's methods are safe for concurrent use once a
// gateway attached it. Each Receive stream owns one channel (a
// core.Subscription); several streams on one queue compete for its
// messages, one unacknowledged message each by default.
package queuesvc
