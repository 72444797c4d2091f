package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
)

// Headers and defaults of the tasks worker.
const (
	// TaskQueueDefault is the tutorial's work queue.
	TaskQueueDefault = "task_queue"
	// TaskDeadLetterSuffix makes the default dead-letter queue's name:
	// "task_queue.dead" for "task_queue".
	TaskDeadLetterSuffix = ".dead"
	// TaskEventsExchangeDefault is the topic exchange the worker publishes
	// lifecycle events to (routing key: the task id; body: a
	// protojson-encoded warren.v1.TaskEvent). The gateway's WatchTasks
	// reads it.
	TaskEventsExchangeDefault = "warren.task.events"
	// TaskHeaderAttempt carries the attempt number (1, 2, ...) of a task
	// the worker republished after a failure, and of a dead-lettered one.
	// A task without it is on its first attempt.
	TaskHeaderAttempt = "warren-attempt"
	// TaskHeaderError carries the last error of a dead-lettered task.
	TaskHeaderError = "warren-error"
	// TaskHeaderWorker carries the id of the worker that dead-lettered a
	// task.
	TaskHeaderWorker = "warren-worker"
)

// A TaskHandler does the work of one task. A nil error acknowledges the
// task. An error is a failed attempt: the task is retried, then
// dead-lettered. When ctx ends (the worker is stopping or lost its
// connection) the handler should return promptly; the task is then neither
// acknowledged nor counted as failed, and the broker delivers it again.
type TaskHandler func(ctx context.Context, body []byte) error

// TaskSleep returns the tutorial's handler: one unit of work, sleeping
// unit, for each "." in the body ("Hola..." takes three units).
func TaskSleep(unit time.Duration) TaskHandler {
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

// TaskConfig configures a Task worker. The zero value works the tutorial's
// task_queue on the local broker as worker.py does.
type TaskConfig struct {
	// Queue is the work queue. Default: "task_queue".
	Queue string
	// QueueType is the type the work queue is declared with when it does
	// not exist yet; an existing queue is used as it is. Default:
	// amqpx.QueueClassic (durable, as the tutorial declares it).
	QueueType amqpx.QueueType
	// DeadLetterQueue receives, as a durable classic queue, the tasks that
	// failed MaxAttempts times, with headers warren-attempt, warren-error
	// and warren-worker. Default: Queue + ".dead" ("task_queue.dead").
	DeadLetterQueue string
	// EventsExchange is the topic exchange of lifecycle events. Default:
	// "warren.task.events".
	EventsExchange string
	// Prefetch is the consumer's prefetch count: 1 gives the tutorial's
	// fair dispatch (a busy worker gets no new task). A negative value sets
	// no limit, which gives plain round-robin. Default: 1.
	Prefetch int
	// Unit is the duration of one unit of work (one ".") of the default
	// Handler. Default: 1s.
	Unit time.Duration
	// Handler does the work. Default: TaskSleep(Unit).
	Handler TaskHandler
	// MaxAttempts bounds the attempts of a failing task; after the last one
	// it goes to DeadLetterQueue. Default: 3.
	MaxAttempts int
	// WorkerID names this worker in events. Default: "<hostname>-<pid>-<random>".
	WorkerID string
	// Logger receives task failures and connection events.
	// Default: slog.Default().
	Logger *slog.Logger
}

func (c TaskConfig) withDefaults() TaskConfig {
	if c.Queue == "" {
		c.Queue = TaskQueueDefault
	}
	if c.QueueType == "" {
		c.QueueType = amqpx.QueueClassic
	}
	if c.DeadLetterQueue == "" {
		c.DeadLetterQueue = c.Queue + TaskDeadLetterSuffix
	}
	if c.EventsExchange == "" {
		c.EventsExchange = TaskEventsExchangeDefault
	}
	if c.Prefetch == 0 {
		c.Prefetch = 1
	}
	if c.Unit <= 0 {
		c.Unit = time.Second
	}
	if c.Handler == nil {
		c.Handler = TaskSleep(c.Unit)
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), taskRandom(3))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Task is the Work Queues worker (worker.py): it consumes the work queue
// with manual acknowledgements and a prefetch count, runs the Handler for
// each task and acknowledges it only after the Handler returned.
//
// Retries and dead-lettering need nothing from the queue's declaration (it
// works on a task_queue warren did not declare): on a failure the worker
// republishes the task to the work queue with warren-attempt incremented, on
// a confirm-mode channel, and acknowledges the delivery only after the
// broker confirmed the copy. After MaxAttempts failures it publishes the
// task, confirmed, to DeadLetterQueue and then acknowledges it. A crash
// between the confirm and the ack leaves both copies: a task may run again,
// it is never lost. On a quorum queue the broker's x-delivery-count (which
// counts deliveries to workers that died) adds to the attempt number.
//
// Task is an amqpx.Handler: its Supervisor calls Connected and Disconnected.
// One goroutine per connection consumes and works; Disconnected and
// Shutdown wait for it.
type Task struct {
	cfg      TaskConfig
	shutdown chan struct{}
	once     sync.Once

	mu   sync.Mutex
	sess *taskSession
}

// taskSession is the worker's state on one connection.
type taskSession struct {
	cancel   context.CancelFunc // ends the running handler
	done     chan struct{}      // closed when the consuming goroutine ended
	consume  *amqp.Channel
	tag      string
	draining atomic.Bool

	// Used by the consuming goroutine only.
	conn    *amqp.Connection
	publish *amqp.Channel // confirm mode: retries and dead letters
	events  *amqp.Channel
}

// NewTask returns a worker; it starts consuming once its Supervisor
// connected it.
func NewTask(cfg TaskConfig) *Task {
	return &Task{cfg: cfg.withDefaults(), shutdown: make(chan struct{})}
}

// ID is the worker id used in events.
func (w *Task) ID() string { return w.cfg.WorkerID }

// Connected implements amqpx.Handler: it declares the work queue, the
// dead-letter queue and the events exchange, and starts consuming.
func (w *Task) Connected(ctx context.Context, conn *amqp.Connection) error {
	select {
	case <-w.shutdown:
		return nil // stopped: stay connected, consume nothing
	default:
	}
	log := w.cfg.Logger
	if _, err := amqpx.DeclareQueue(conn, amqpx.QueueSpec{Name: w.cfg.Queue, Durable: true, Type: w.cfg.QueueType}, log); err != nil {
		return err
	}
	if _, err := amqpx.DeclareQueue(conn, amqpx.QueueSpec{Name: w.cfg.DeadLetterQueue, Durable: true}, log); err != nil {
		return err
	}
	events, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := events.ExchangeDeclare(w.cfg.EventsExchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", w.cfg.EventsExchange, err)
	}
	publish, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := publish.Confirm(false); err != nil {
		return fmt.Errorf("enter confirm mode: %w", err)
	}
	consume, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if w.cfg.Prefetch > 0 {
		if err := consume.Qos(w.cfg.Prefetch, 0, false); err != nil {
			return fmt.Errorf("set prefetch: %w", err)
		}
	}
	tag := "warren-task-" + w.cfg.WorkerID + "-" + taskRandom(4)
	deliveries, err := consume.Consume(w.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", w.cfg.Queue, err)
	}
	// The handler's context ends with the Supervisor's, or earlier when
	// Disconnected or Shutdown interrupts the task.
	hctx, cancel := context.WithCancel(ctx)
	sess := &taskSession{
		cancel: cancel, done: make(chan struct{}), consume: consume, tag: tag,
		conn: conn, publish: publish, events: events,
	}
	w.mu.Lock()
	select {
	case <-w.shutdown:
		// Shutdown came while we were setting up: consume nothing.
		w.mu.Unlock()
		cancel()
		_ = consume.Close()
		return nil
	default:
	}
	w.sess = sess
	w.mu.Unlock()
	go func() {
		defer close(sess.done)
		for d := range deliveries {
			if sess.draining.Load() {
				// Stopping: hand back what was delivered but not started.
				_ = d.Nack(false, true)
				continue
			}
			w.work(hctx, sess, d)
		}
	}()
	return nil
}

// Disconnected implements amqpx.Handler: it interrupts the running task
// (whose delivery the broker requeues with the connection) and waits for
// the consuming goroutine.
func (w *Task) Disconnected(error) {
	w.mu.Lock()
	sess := w.sess
	w.sess = nil
	w.mu.Unlock()
	if sess != nil {
		sess.cancel()
		<-sess.done
	}
}

// Shutdown stops consuming and waits for the running task to finish and be
// acknowledged. If ctx ends first, the task is interrupted and handed back
// to the broker unacknowledged (requeued), and Shutdown returns ctx.Err().
// Deliveries received but not started are requeued. Call it before ending
// the Supervisor's context. It is idempotent.
func (w *Task) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.once.Do(func() { close(w.shutdown) })
	sess := w.sess
	w.mu.Unlock()
	if sess == nil {
		return nil
	}
	sess.draining.Store(true)
	// basic.cancel: the broker sends nothing more; amqp091-go closes the
	// deliveries channel, which ends the consuming goroutine.
	if err := sess.consume.Cancel(sess.tag, false); err != nil {
		sess.cancel()
	}
	select {
	case <-sess.done:
		return nil
	case <-ctx.Done():
		sess.cancel()
		<-sess.done
		return ctx.Err()
	}
}

// work runs one delivery to its end: ack, retry, dead-letter or requeue.
func (w *Task) work(ctx context.Context, sess *taskSession, d amqp.Delivery) {
	log := w.cfg.Logger
	id := d.MessageId
	if id == "" {
		// A foreign publisher (new_task.py) sets no id; name the task so
		// its retries and events can be followed.
		id = "task-" + taskRandom(8)
	}
	attempt := taskAttempt(d.Headers)
	w.event(ctx, sess, id, warrenv1.TaskState_TASK_STATE_STARTED, attempt, "")
	err := w.cfg.Handler(ctx, d.Body)
	switch {
	case err == nil:
		if err := d.Ack(false); err != nil {
			log.Warn("task done but not acknowledged; the broker will deliver it again", "task", id, "err", err)
			return
		}
		w.event(ctx, sess, id, warrenv1.TaskState_TASK_STATE_SUCCEEDED, attempt, "")
	case ctx.Err() != nil:
		// Interrupted, not failed: never acknowledge unfinished work.
		_ = d.Nack(false, true)
	case attempt < w.cfg.MaxAttempts:
		log.Warn("task failed; retrying", "task", id, "attempt", attempt, "max_attempts", w.cfg.MaxAttempts, "err", err)
		msg := taskCopy(d, id)
		msg.Headers[TaskHeaderAttempt] = int32(attempt + 1)
		if perr := w.confirmed(ctx, sess, w.cfg.Queue, msg); perr != nil {
			log.Warn("task retry not published; requeueing the delivery", "task", id, "err", perr)
			_ = d.Nack(false, true)
			return
		}
		if err := d.Ack(false); err != nil {
			log.Warn("retried task not acknowledged; it may run twice", "task", id, "err", err)
		}
		w.event(ctx, sess, id, warrenv1.TaskState_TASK_STATE_FAILED, attempt, err.Error())
	default:
		log.Warn("task failed for the last time; dead-lettering", "task", id, "attempt", attempt, "queue", w.cfg.DeadLetterQueue, "err", err)
		msg := taskCopy(d, id)
		msg.Headers[TaskHeaderAttempt] = int32(attempt)
		msg.Headers[TaskHeaderError] = err.Error()
		msg.Headers[TaskHeaderWorker] = w.cfg.WorkerID
		// Declare it again: publishing to a queue someone deleted would
		// be confirmed and dropped.
		_, perr := amqpx.DeclareQueue(sess.conn, amqpx.QueueSpec{Name: w.cfg.DeadLetterQueue, Durable: true}, log)
		if perr == nil {
			perr = w.confirmed(ctx, sess, w.cfg.DeadLetterQueue, msg)
		}
		if perr != nil {
			log.Warn("dead-lettered task not published; requeueing the delivery", "task", id, "err", perr)
			_ = d.Nack(false, true)
			return
		}
		if err := d.Ack(false); err != nil {
			log.Warn("dead-lettered task not acknowledged; it may run again", "task", id, "err", err)
		}
		w.event(ctx, sess, id, warrenv1.TaskState_TASK_STATE_DEAD_LETTERED, attempt, err.Error())
	}
}

// errTaskNotConfirmed means the broker nacked a publishing or its channel
// closed first.
var errTaskNotConfirmed = errors.New("worker: publishing not confirmed by the broker")

// confirmed publishes msg to queue through the default exchange and waits
// for the broker's confirm. A publish channel that closed is replaced.
func (w *Task) confirmed(ctx context.Context, sess *taskSession, queue string, msg amqp.Publishing) error {
	if sess.publish.IsClosed() {
		ch, err := sess.conn.Channel()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return fmt.Errorf("enter confirm mode: %w", err)
		}
		sess.publish = ch
	}
	dc, err := sess.publish.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, msg)
	if err != nil {
		return fmt.Errorf("publish to %q: %w", queue, err)
	}
	ack, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("publish to %q: %w", queue, err)
	}
	if !ack {
		return fmt.Errorf("publish to %q: %w", queue, errTaskNotConfirmed)
	}
	return nil
}

// event publishes a lifecycle event, best effort.
func (w *Task) event(ctx context.Context, sess *taskSession, id string, state warrenv1.TaskState, attempt int, errText string) {
	ev := &warrenv1.TaskEvent{
		TaskId: id, State: state, WorkerId: w.cfg.WorkerID,
		Time: timestamppb.Now(), Attempt: uint32(attempt), Error: errText,
	}
	body, err := protojson.Marshal(ev)
	if err == nil {
		if sess.events.IsClosed() {
			// A 404 (someone deleted the exchange) closed it.
			if ch, oerr := sess.conn.Channel(); oerr == nil {
				sess.events = ch
			}
		}
		err = sess.events.PublishWithContext(context.WithoutCancel(ctx), w.cfg.EventsExchange, id, false, false, amqp.Publishing{
			ContentType: "application/json",
			Body:        body,
		})
	}
	if err != nil {
		w.cfg.Logger.Debug("task event not published", "task", id, "state", state, "err", err)
	}
}

// taskMaxAttempt caps the attempt number read from headers, which foreign
// publishers may set to anything: it is republished as an AMQP int32.
const taskMaxAttempt = math.MaxInt32

// taskAttempt is the attempt number of a delivery: warren-attempt (1 when
// absent or not a positive integer) plus, on a quorum queue, the deliveries
// the broker counted; at most taskMaxAttempt.
func taskAttempt(h amqp.Table) int {
	attempt := 1
	if n, ok := taskInt(h[TaskHeaderAttempt]); ok && n >= 1 {
		attempt = min(n, taskMaxAttempt)
	}
	if n, ok := taskInt(h["x-delivery-count"]); ok && n > 0 {
		attempt += min(n, taskMaxAttempt) // no overflow: both at most MaxInt32
	}
	return min(attempt, taskMaxAttempt)
}

func taskInt(v any) (int, bool) {
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
func taskCopy(d amqp.Delivery, id string) amqp.Publishing {
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

func taskRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
