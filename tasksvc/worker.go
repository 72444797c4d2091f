package tasksvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// A Handler does the work of one task. A nil error acknowledges the task.
// An error is a failed attempt: the task is retried, then dead-lettered.
// When ctx ends (the worker is stopping and its drain timed out, or it
// lost its connection) the handler should return promptly; the task is
// then neither acknowledged nor counted as failed, and the broker
// delivers it again.
type Handler func(ctx context.Context, body []byte) error

// Sleep returns the tutorial's handler: one unit of work, sleeping unit,
// for each "." in the body ("Hola..." takes three units).
func Sleep(unit time.Duration) Handler {
	return func(ctx context.Context, body []byte) error {
		n := 0
		for _, b := range body {
			if b == '.' {
				n++
			}
		}
		if n == 0 || unit <= 0 {
			return ctx.Err()
		}
		t := time.NewTimer(time.Duration(n) * unit)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
}

// WorkerConfig configures a Worker. The zero value works the tutorial's
// task_queue as worker.py does.
type WorkerConfig struct {
	// Queue is the work queue, declared durable on every connection.
	// Default: "task_queue".
	Queue string
	// QueueType is the type the work queue and DeadLetterQueue are
	// declared with: quorum (as today's official tutorials declare
	// task_queue) or core.QueueClassic (a durable classic queue, as the
	// older tutorials, and the seed's new_task.py and worker.py, declare
	// it). Both are durable. Default (""): quorum. A queue that exists with
	// other properties is used as it is, with a warning. On a quorum queue
	// the broker's x-delivery-count adds to a task's attempt number (see
	// Worker).
	QueueType core.QueueType
	// DeadLetterQueue receives, as a durable queue of QueueType, the tasks
	// that failed MaxAttempts times, with headers warren-attempt,
	// warren-error and warren-worker. Default: Queue + ".dead"
	// ("task_queue.dead").
	DeadLetterQueue string
	// EventsExchange is the topic exchange of lifecycle events, declared
	// durable on every connection. Default: "warren.task.events".
	EventsExchange string
	// Prefetch is the consumer's prefetch count: 1 gives the tutorial's
	// fair dispatch (a busy worker gets no new task). A negative value sets
	// no limit, which gives plain round-robin. Default: 1.
	Prefetch int
	// Unit is the duration of one unit of work (one ".") of the default
	// Handler. Default: 1s.
	Unit time.Duration
	// Handler does the work. Default: Sleep(Unit).
	Handler Handler
	// MaxAttempts bounds the attempts of a failing task; after the last
	// one it goes to DeadLetterQueue. Default: 3.
	MaxAttempts int
	// WorkerID names this worker in events and dead letters.
	// Default: "<hostname>-<pid>-<random>".
	WorkerID string
	// Timeout bounds each wait for publisher confirms (of a retry, a dead
	// letter, or the events in flight). Default: 10s.
	Timeout time.Duration
	// Logger receives task failures. Default: the worker group's (its
	// Supervisor's).
	Logger *slog.Logger
}

func (c WorkerConfig) withDefaults() WorkerConfig {
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if c.DeadLetterQueue == "" {
		c.DeadLetterQueue = c.Queue + DeadLetterSuffix
	}
	if c.EventsExchange == "" {
		c.EventsExchange = DefaultEventsExchange
	}
	if c.Prefetch == 0 {
		c.Prefetch = 1
	}
	if c.Unit <= 0 {
		c.Unit = time.Second
	}
	if c.Handler == nil {
		c.Handler = Sleep(c.Unit)
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(3))
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Worker is the Work Queues worker (worker.py) as a worker.Worker: it
// consumes the work queue with manual acknowledgements and a prefetch
// count, runs the Handler for each task and acknowledges it only after the
// Handler returned.
//
// Retries and dead-lettering need nothing from the queue's declaration (it
// works on a task_queue warren did not declare): on a failure the worker
// republishes the task to the work queue with warren-attempt incremented
// and acknowledges the delivery only after the broker confirmed the copy.
// After MaxAttempts failures it publishes the task, confirmed, to
// DeadLetterQueue and then acknowledges it. A crash between the confirm
// and the ack leaves both copies: a task may run again, it is never lost.
// On a quorum queue the broker's x-delivery-count (which counts the
// deliveries that went back unacknowledged: to workers that died, and
// tasks a draining worker handed back) adds to the attempt number.
// (x-delivery-limit would make the broker count instead, but a queue
// argument makes every other declaration of task_queue without it, the
// tutorials' among them, fail with PRECONDITION_FAILED; see
// docs/queue-types.md.)
//
// It is built on the core: its consumer is a core.Consumer (one handler
// goroutine, which hands back what it received but did not start when it
// drains) and its publishings (retries, dead letters, events) go through
// a core.Publisher of one channel, so the core's metrics and hooks see
// both. The one handler goroutine works one task at a time and publishes
// the task's events in lifecycle order. Events are pipelined: their
// confirms are awaited when more than 64 are in flight, before a retry's
// copy is published, and when the worker shuts down, so they cost the
// worker no round trip of its own.
type Worker struct {
	cfg  WorkerConfig
	log  *slog.Logger
	pub  *core.Publisher
	cons *core.Consumer
	conn atomic.Pointer[core.Conn] // the current connection, to declare again

	mu     sync.Mutex     // guards events: the handler's, then Shutdown's
	events []pendingEvent // published, not yet confirmed
}

// pendingEvent is an event published and not yet confirmed.
type pendingEvent struct {
	conf  *core.Confirmation
	task  string
	state warrenv1.TaskState
}

// maxPendingEvents bounds the events in flight: past it the worker waits
// for the oldest confirms before it goes on.
const maxPendingEvents = 64

// NewWorker returns a Worker; it works once a worker.Group attached it.
func NewWorker(cfg WorkerConfig) *Worker { return &Worker{cfg: cfg.withDefaults()} }

// ID is the worker id used in events and dead letters.
func (w *Worker) ID() string { return w.cfg.WorkerID }

// Attach builds the worker's publisher and consumer on sup
// (worker.Worker).
func (w *Worker) Attach(sup *core.Supervisor) {
	w.log = w.cfg.Logger
	if w.log == nil {
		w.log = sup.Logger()
	}
	sup.Known(w.cfg.Queue, w.cfg.DeadLetterQueue, w.cfg.EventsExchange) // labels of the metrics
	// One channel: the worker publishes from one goroutine, and its events
	// keep their order on the wire.
	w.pub = core.NewPublisher(sup, core.PublisherConfig{Channels: 1, Timeout: w.cfg.Timeout})
	w.cons = core.NewConsumer(sup, core.ConsumerConfig{
		Queue:       w.queueSpec(w.cfg.Queue),
		Prefetch:    w.cfg.Prefetch,
		Concurrency: 1,
		Name:        consumerName(w.cfg.WorkerID),
		Logger:      w.log,
		Declare:     w.declare,
		HandBack:    true,
	}, func(ctx context.Context, _ *amqp.Channel, d *amqp.Delivery) { w.work(ctx, d) })
}

// queueSpec is how the worker declares its queues: durable, of
// QueueType.
func (w *Worker) queueSpec(name string) core.QueueSpec {
	return core.QueueSpec{Name: name, Durable: true, Type: w.cfg.QueueType}
}

// declare declares, on every connection, what the worker publishes to:
// the dead-letter queue and the events exchange.
func (w *Worker) declare(conn *core.Conn) error {
	if _, err := core.DeclareQueue(conn.Connection, w.queueSpec(w.cfg.DeadLetterQueue), w.log); err != nil {
		return err
	}
	if err := declareEventsExchange(conn.Connection, w.cfg.EventsExchange, w.log); err != nil {
		return err
	}
	w.conn.Store(conn)
	return nil
}

// Shutdown stops consuming and waits for the running task to finish and
// be acknowledged (worker.Worker), then for the confirms of its events.
// If ctx ends first, the task is interrupted and handed back to the
// broker unacknowledged (requeued), and Shutdown returns ctx.Err().
// Deliveries received but not started are requeued. After Shutdown the
// worker consumes nothing, even after a reconnect. It is idempotent.
func (w *Worker) Shutdown(ctx context.Context) error {
	if w.cons == nil {
		return nil // never attached
	}
	err := w.cons.Shutdown(ctx)
	w.confirmEvents(ctx, -1)
	return err
}

// maxTagLen bounds consumer tags, AMQP short strings like the ids.
const maxTagLen = 200

// consumerName prefixes the worker's consumer tag, as the management UI
// shows it; core.Consumer adds the host, pid and a random suffix.
func consumerName(workerID string) string {
	name := "warren-task-" + workerID
	if len(name) > maxTagLen-64 {
		name = name[:maxTagLen-64]
	}
	return name
}

// work runs one delivery to its end: ack, retry, dead-letter or requeue.
// A watcher sees the task's events in lifecycle order: STARTED, then
// SUCCEEDED, FAILED or DEAD_LETTERED. They leave in that order on the
// worker's one publishing channel, and FAILED is confirmed before the
// retry's copy is published, so the copy's STARTED (from any worker)
// comes after it.
func (w *Worker) work(ctx context.Context, d *amqp.Delivery) {
	log := w.log
	id := d.MessageId
	if id == "" {
		// A foreign publisher (new_task.py) sets no id; name the task so
		// its retries and events can be followed.
		id = "task-" + randomHex(8)
	}
	attempt, deliveries := taskAttempt(d.Headers)
	t := taskRef{id: id, attempt: attempt, deliveries: deliveries}
	w.event(ctx, t, warrenv1.TaskState_TASK_STATE_STARTED, "")
	err := w.cfg.Handler(ctx, d.Body)
	if err != nil {
		// The metrics count a failed attempt under the code core.Status
		// gives its error, as they count a core.Server handler's.
		core.SetOutcome(ctx, err)
	}
	switch {
	case err == nil:
		if err := d.Ack(false); err != nil {
			log.Warn("task done but not acknowledged; the broker will deliver it again", "task", id, "err", err)
			return
		}
		w.event(ctx, t, warrenv1.TaskState_TASK_STATE_SUCCEEDED, "")
	case ctx.Err() != nil:
		// Interrupted, not failed: never acknowledge unfinished work.
		_ = d.Nack(false, true)
	case attempt < w.cfg.MaxAttempts:
		log.Warn("task failed; retrying", "task", id, "attempt", attempt, "max_attempts", w.cfg.MaxAttempts, "err", err)
		// FAILED is in the watchers' queues before the copy exists: the
		// copy's STARTED, from whichever worker, follows it.
		w.event(ctx, t, warrenv1.TaskState_TASK_STATE_FAILED, err.Error())
		w.confirmEvents(ctx, -1)
		msg := taskCopy(d, id)
		msg.Headers[HeaderAttempt] = int32(attempt + 1)
		if perr := w.publish(ctx, w.cfg.Queue, msg); perr != nil {
			log.Warn("task retry not published; requeueing the delivery", "task", id, "err", perr)
			_ = d.Nack(false, true)
			return
		}
		if err := d.Ack(false); err != nil {
			log.Warn("retried task not acknowledged; it may run twice", "task", id, "err", err)
		}
	default:
		log.Warn("task failed for the last time; dead-lettering", "task", id, "attempt", attempt, "queue", w.cfg.DeadLetterQueue, "err", err)
		msg := taskCopy(d, id)
		msg.Headers[HeaderAttempt] = int32(attempt)
		msg.Headers[HeaderError] = err.Error()
		msg.Headers[HeaderWorker] = w.cfg.WorkerID
		perr := w.publish(ctx, w.cfg.DeadLetterQueue, msg)
		if errors.Is(perr, core.ErrNoQueue) {
			// Someone deleted it; the broker returned the task. Declare
			// it again and retry once.
			if conn := w.conn.Load(); conn == nil {
				perr = core.ErrConnectionLost
			} else if _, derr := core.DeclareQueue(conn.Connection, w.queueSpec(w.cfg.DeadLetterQueue), log); derr != nil {
				perr = derr
			} else {
				perr = w.publish(ctx, w.cfg.DeadLetterQueue, msg)
			}
		}
		if perr != nil {
			log.Warn("dead-lettered task not published; requeueing the delivery", "task", id, "err", perr)
			_ = d.Nack(false, true)
			return
		}
		core.SetDeadLettered(ctx)
		if err := d.Ack(false); err != nil {
			log.Warn("dead-lettered task not acknowledged; it may run again", "task", id, "err", err)
		}
		w.event(ctx, t, warrenv1.TaskState_TASK_STATE_DEAD_LETTERED, err.Error())
	}
}

// publish publishes msg, mandatory, to queue through the default exchange
// and waits for the broker's confirm: a missing queue is core.ErrNoQueue.
func (w *Worker) publish(ctx context.Context, queue string, msg amqp.Publishing) error {
	err := w.pub.Publish(ctx, &core.Message{RoutingKey: queue, Mandatory: true, Publishing: msg})
	if err != nil {
		return fmt.Errorf("publish to %q: %w", queue, err)
	}
	return nil
}

// event publishes a lifecycle event without waiting for its confirm,
// which confirmEvents awaits later (at most maxPendingEvents stay
// unawaited). Events are best effort: a failure is logged, and the task
// goes on.
func (w *Worker) event(ctx context.Context, t taskRef, state warrenv1.TaskState, errText string) {
	id := t.id
	ev := newEvent(id, state, w.cfg.WorkerID, t.attempt, errText)
	ev.DeliveryCount = t.deliveries
	m, err := eventMessage(w.cfg.EventsExchange, ev)
	var c *core.Confirmation
	if err == nil {
		c, err = w.pub.PublishDeferred(ctx, m)
	}
	if err != nil {
		w.log.Debug("task event not published", "task", id, "state", state, "err", err)
		return
	}
	w.mu.Lock()
	w.events = append(w.events, pendingEvent{conf: c, task: id, state: state})
	n := len(w.events) - maxPendingEvents
	w.mu.Unlock()
	if n > 0 {
		w.confirmEvents(ctx, n)
	}
}

// confirmEvents waits for the confirms of the oldest n events in flight
// (all of them when n < 0), for at most the worker's Timeout in all, and
// logs the events the broker did not take. Those of a lost connection
// fail at once.
func (w *Worker) confirmEvents(ctx context.Context, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n < 0 || n > len(w.events) {
		n = len(w.events)
	}
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	for _, e := range w.events[:n] {
		if err := e.conf.Wait(ctx); err != nil {
			w.log.Debug("task event not confirmed", "task", e.task, "state", e.state, "err", err)
		}
	}
	w.events = append(w.events[:0], w.events[n:]...)
}

// maxAttempt caps the attempt number read from headers, which foreign
// publishers may set to anything: it is republished as an AMQP int32.
const maxAttempt = math.MaxInt32

// taskRef is what a task's events say of the delivery they are about.
type taskRef struct {
	id         string
	attempt    int
	deliveries uint32 // x-delivery-count
}

// taskAttempt is the attempt number of a delivery: warren-attempt (1 when
// absent or not a positive integer) plus, on a quorum queue, the
// deliveries the broker counted (x-delivery-count, also returned); at
// most maxAttempt.
func taskAttempt(h amqp.Table) (attempt int, deliveries uint32) {
	attempt = 1
	if n, ok := headerInt(h[HeaderAttempt]); ok && n >= 1 {
		attempt = min(n, maxAttempt)
	}
	if n, ok := headerInt(h["x-delivery-count"]); ok && n > 0 {
		n = min(n, maxAttempt)
		attempt += n // no overflow: both at most MaxInt32
		deliveries = uint32(n)
	}
	return min(attempt, maxAttempt), deliveries
}

// headerInt reads an integer header of any AMQP integer type, or decimal
// text.
func headerInt(v any) (int, bool) {
	switch n := v.(type) {
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case int:
		return n, true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

// taskCopy is a persistent copy of a delivery for republishing.
func taskCopy(d *amqp.Delivery, id string) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range d.Headers {
		if k == "x-delivery-count" {
			continue
		}
		h[k] = v
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       id,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}
