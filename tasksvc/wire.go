package tasksvc

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// The wire contract of tasks and their events, defined once for Service,
// Worker and the tutorial's scripts (see the package doc).
const (
	// DefaultQueue is the tutorial's work queue.
	DefaultQueue = "task_queue"
	// DeadLetterSuffix makes the default dead-letter queue's name:
	// "task_queue.dead" for "task_queue".
	DeadLetterSuffix = ".dead"
	// DefaultEventsExchange is the topic exchange (durable) task lifecycle
	// events are published to.
	DefaultEventsExchange = "warren.task.events"
	// WatchersSuffix makes the name of the queue whose consumers are the
	// WatchTasks streams of every gateway: "warren.task.events.watchers".
	// It never holds a message.
	WatchersSuffix = ".watchers"

	// HeaderAttempt carries the attempt number (1, 2, ...) of a task a
	// worker republished after a failure, and of a dead-lettered one. A
	// task without it is on its first attempt.
	HeaderAttempt = "warren-attempt"
	// HeaderError carries the last error of a dead-lettered task.
	HeaderError = "warren-error"
	// HeaderWorker carries the id of the worker that dead-lettered a task.
	HeaderWorker = "warren-worker"

	// TaskContentType is the content type of the tasks SubmitTask
	// publishes (the body is the request's text).
	TaskContentType = "text/plain"
	// EventContentType is the content type of task events: a
	// protojson-encoded warren.v1.TaskEvent, published with the task id as
	// routing key.
	EventContentType = "application/json"

	// MaxIDLen bounds task ids and idempotency keys, in bytes. They become
	// AMQP short strings (message_id, routing and binding keys), which
	// may not exceed 255 bytes: amqp091-go closes the whole connection
	// on a longer one, so the gateway refuses them first.
	MaxIDLen = 200
)

// watchersQueue names the queue whose consumers are the watchers of the
// events exchange.
func watchersQueue(exchange string) string { return exchange + WatchersSuffix }

// checkID refuses an id (what names it) longer than MaxIDLen.
func checkID(what, id string) error {
	if len(id) > MaxIDLen {
		return core.Argumentf("tasksvc: %s longer than %d bytes (%d)", what, MaxIDLen, len(id))
	}
	return nil
}

// bindingKey is the events exchange binding key that selects taskID's
// events: the id itself, or "#" (every task) for an empty id and for an id
// with topic wildcards, whose events the stream then filters.
func bindingKey(taskID string) string {
	if taskID == "" || strings.ContainsAny(taskID, "*#") {
		return "#"
	}
	return taskID
}

// newTaskID returns a random task id for a submission without an
// idempotency key.
func newTaskID() string { return randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newEvent builds one lifecycle event, timed now.
func newEvent(id string, state warrenv1.TaskState, workerID string, attempt int, errText string) *warrenv1.TaskEvent {
	return &warrenv1.TaskEvent{
		TaskId: id, State: state, WorkerId: workerID,
		Time: timestamppb.Now(), Attempt: uint32(max(attempt, 0)), Error: errText,
	}
}

// eventMessage encodes ev as its publishing to exchange.
func eventMessage(exchange string, ev *warrenv1.TaskEvent) (*core.Message, error) {
	body, err := protojson.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode task event: %w", err)
	}
	return &core.Message{
		Exchange:   exchange,
		RoutingKey: ev.GetTaskId(),
		Publishing: amqp.Publishing{ContentType: EventContentType, Body: body},
	}, nil
}

// decodeEvent decodes an event's body. Unknown fields are allowed, so a
// newer worker's events reach an older gateway.
func decodeEvent(body []byte) (*warrenv1.TaskEvent, error) {
	ev := &warrenv1.TaskEvent{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, ev); err != nil {
		return nil, fmt.Errorf("decode task event: %w", err)
	}
	return ev, nil
}

// declareEventsExchange declares the events exchange (topic, durable),
// using one that exists with other properties as it is.
func declareEventsExchange(conn *amqp.Connection, name string, log *slog.Logger) error {
	return core.DeclareExchange(conn, core.ExchangeSpec{Name: name, Kind: amqp.ExchangeTopic, Durable: true}, log)
}
