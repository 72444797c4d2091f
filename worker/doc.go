// Package worker runs warren's workers: a Group owns one supervised broker
// connection, attaches its Workers to it (each builds what it consumes
// with: a core.Server for request/reply, or a consumer of its own) and,
// when its context ends, drains them: every worker stops consuming,
// finishes what it holds for up to the drain timeout, and hands the rest
// back to the broker, before the connection closes.
//
// The workers of warren's own services live with them: fibsvc.Worker
// answers FibonacciService's requests, tasksvc.Worker works TaskService's
// tasks. Server is the worker SDK for a team's own proto services: it
// serves the implementations registered on it from the queues their
// routes name.
//
// Concurrency contract: Run is called once and blocks until the drain is
// over; the workers' goroutines belong to their core components, which
// the Group's Supervisor stops and waits for.
package worker
