package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
)

// Defaults of TaskConfig. The worker (worker.TaskConfig) uses the same.
const (
	// TaskQueueDefault is the tutorial's work queue.
	TaskQueueDefault = "task_queue"
	// TaskEventsExchangeDefault is the topic exchange task lifecycle events
	// are published to, with the task id as routing key and a
	// protojson-encoded warren.v1.TaskEvent as body.
	TaskEventsExchangeDefault = "warren.task.events"
	// TaskManagementURLDefault is the RabbitMQ management HTTP API.
	TaskManagementURLDefault = "http://guest:guest@127.0.0.1:15672"
)

// taskMaxIDLen bounds task ids: they are routing keys of the events
// exchange (at most 255 bytes).
const taskMaxIDLen = 200

// TaskConfig configures a TaskService. The zero value serves the
// tutorial's task_queue on the local broker.
type TaskConfig struct {
	// Queue is the work queue. Default: "task_queue".
	Queue string
	// QueueType is the type the queue is declared with when it does not
	// exist yet: a durable classic queue as the tutorial declares it, or a
	// quorum queue for clusters. An existing queue with other arguments is
	// used as it is, with a warning. Default: amqpx.QueueClassic.
	QueueType amqpx.QueueType
	// EventsExchange is the topic exchange of task lifecycle events.
	// Default: "warren.task.events".
	EventsExchange string
	// ConfirmChannels is the number of confirm-mode channels SubmitTask
	// publishes on; concurrent submissions pipeline on each. Default: 4.
	ConfirmChannels int
	// WatchPrefetch is the prefetch count of each WatchTasks stream's
	// consumer, which bounds the events buffered for it. Default: 64.
	WatchPrefetch int
	// WatchMaxLength caps each WatchTasks stream's queue; a watcher that
	// falls further behind loses the oldest events. Default: 10000.
	WatchMaxLength int
	// ManagementURL is the base URL of the RabbitMQ management HTTP API,
	// with credentials, read by GetQueueStats.
	// Default: "http://guest:guest@127.0.0.1:15672".
	ManagementURL string
	// HTTPClient calls the management API. Default: a client with a 5s
	// timeout that keeps no idle connections (stats calls are rare, and
	// no goroutine outlives a call).
	HTTPClient *http.Client
	// Logger receives warnings. Default: slog.Default().
	Logger *slog.Logger
}

func (c TaskConfig) withDefaults() TaskConfig {
	if c.Queue == "" {
		c.Queue = TaskQueueDefault
	}
	if c.QueueType == "" {
		c.QueueType = amqpx.QueueClassic
	}
	if c.EventsExchange == "" {
		c.EventsExchange = TaskEventsExchangeDefault
	}
	if c.ConfirmChannels <= 0 {
		c.ConfirmChannels = 4
	}
	if c.WatchPrefetch <= 0 {
		c.WatchPrefetch = 64
	}
	if c.WatchMaxLength <= 0 {
		c.WatchMaxLength = 10000
	}
	if c.ManagementURL == "" {
		c.ManagementURL = TaskManagementURLDefault
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment},
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// TaskService implements warren.v1.TaskService, the Work Queues tutorial:
// confirmed task submission to a durable queue, task events as a stream,
// and the queue's counts. It is an amqpx.Handler; register it with the
// Supervisor that owns the connection. Its methods are safe for concurrent
// use.
type TaskService struct {
	warrenv1.UnimplementedTaskServiceServer

	cfg      TaskConfig
	shutdown chan struct{}
	once     sync.Once

	mu     sync.Mutex
	conn   *amqp.Connection
	pool   *queueConfirmPool
	events *taskEventPublisher

	blocked       atomic.Bool  // the broker blocks publishing (resource alarm)
	localWatchers atomic.Int64 // WatchTasks streams on this gateway
}

// Blocked makes SubmitTask fail fast with RESOURCE_EXHAUSTED while the
// broker blocks publishing (amqpx.BlockedHandler).
func (s *TaskService) Blocked(active bool, _ string) { s.blocked.Store(active) }

// NewTaskService returns a TaskService; it serves once its Supervisor
// connected it.
func NewTaskService(cfg TaskConfig) *TaskService {
	return &TaskService{cfg: cfg.withDefaults(), shutdown: make(chan struct{})}
}

// Connected implements amqpx.Handler: it declares the work queue and the
// events exchange and opens the confirm channels.
func (s *TaskService) Connected(ctx context.Context, conn *amqp.Connection) error {
	if _, err := amqpx.DeclareQueue(conn, amqpx.QueueSpec{
		Name: s.cfg.Queue, Durable: true, Type: s.cfg.QueueType,
	}, s.cfg.Logger); err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := ch.ExchangeDeclare(s.cfg.EventsExchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", s.cfg.EventsExchange, err)
	}
	events := &taskEventPublisher{
		exchange: s.cfg.EventsExchange, conn: conn, ch: ch, log: s.cfg.Logger,
		watchers: taskWatchersQueue(s.cfg.EventsExchange), local: &s.localWatchers,
		queue: make(chan *warrenv1.TaskEvent, taskEventBuffer),
		stop:  make(chan struct{}), done: make(chan struct{}),
	}
	go events.run()
	s.mu.Lock()
	s.conn, s.pool, s.events = conn, queueNewConfirmPool(conn, s.cfg.ConfirmChannels), events
	s.mu.Unlock()
	return nil
}

// Disconnected implements amqpx.Handler. Pending submissions fail with
// UNAVAILABLE (their channels closed before the confirm); WatchTasks
// streams end with UNAVAILABLE.
func (s *TaskService) Disconnected(error) {
	s.mu.Lock()
	pool, events := s.pool, s.events
	s.conn, s.pool, s.events = nil, nil, nil
	s.mu.Unlock()
	if pool != nil {
		pool.close()
	}
	if events != nil {
		close(events.stop)
		<-events.done
	}
}

// Shutdown ends every WatchTasks stream with UNAVAILABLE and makes new
// calls fail with UNAVAILABLE; call it before grpc.Server.GracefulStop,
// which waits for streams. It is idempotent.
func (s *TaskService) Shutdown() {
	s.once.Do(func() { close(s.shutdown) })
}

func (s *TaskService) current() (*amqp.Connection, *queueConfirmPool, *taskEventPublisher, error) {
	select {
	case <-s.shutdown:
		return nil, nil, nil, errQueueShutdown
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil, nil, nil, errQueueNotConnected
	}
	return s.conn, s.pool, s.events, nil
}

// SubmitTask implements warren.v1.TaskService.
func (s *TaskService) SubmitTask(ctx context.Context, req *warrenv1.SubmitTaskRequest) (*warrenv1.SubmitTaskResponse, error) {
	id := req.GetIdempotencyKey()
	if len(id) > taskMaxIDLen {
		return nil, status.Errorf(codes.InvalidArgument, "gateway: idempotency key longer than %d bytes", taskMaxIDLen)
	}
	if id == "" {
		id = queueNewID()
	}
	if s.blocked.Load() {
		return nil, errBlockedStatus
	}
	_, pool, events, err := s.current()
	if err != nil {
		return nil, queueStatus(err)
	}
	now := time.Now()
	err = pool.publish(ctx, "", s.cfg.Queue, amqp.Publishing{
		ContentType:  "text/plain",
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Timestamp:    now,
		Body:         []byte(req.GetBody()),
	})
	if err != nil {
		return nil, queueStatus(fmt.Errorf("submit task %s to queue %q: %w", id, s.cfg.Queue, err))
	}
	events.publish(&warrenv1.TaskEvent{
		TaskId: id, State: warrenv1.TaskState_TASK_STATE_QUEUED, Time: timestamppb.New(now), Attempt: 1,
	})
	return &warrenv1.SubmitTaskResponse{TaskId: id}, nil
}

// taskEventBuffer bounds the QUEUED events waiting to be published.
const taskEventBuffer = 1024

// taskEventPublisher publishes the gateway's task events (QUEUED) from a
// goroutine of its own, off the path of SubmitTask's answer. Events are
// best effort: one that finds the buffer full, or is pending when the
// connection goes, is dropped (and logged at debug level); a task never
// fails for its event.
//
// Nor is an event published that nobody watches: every WatchTasks stream,
// on any gateway, also consumes the watchers queue (which never holds a
// message), so its consumer count is the number of watchers; the publisher
// reads it at most every taskWatchersRecheck and publishes QUEUED events
// only while it is not zero (or this gateway has a watcher, or the count
// is unknown). A watcher on another gateway may so miss the QUEUED events
// of its first moments. Measured, this spares the broker a publishing per
// task in the usual case, where nobody watches.
type taskEventPublisher struct {
	exchange string
	conn     *amqp.Connection
	ch       *amqp.Channel // used by run only
	log      *slog.Logger
	queue    chan *warrenv1.TaskEvent
	stop     chan struct{} // closed by Disconnected
	done     chan struct{} // closed when run returned

	watchers  string        // the watchers queue
	local     *atomic.Int64 // this gateway's watchers
	check     *amqp.Channel // for passive declares of watchers; used by run only
	remote    int           // the last count read; -1: unknown
	checkedAt time.Time
}

// taskWatchersRecheck is how old the watchers count may be.
const taskWatchersRecheck = 500 * time.Millisecond

// taskWatchersQueue names the queue whose consumers are the watchers of the
// events exchange.
func taskWatchersQueue(exchange string) string { return exchange + ".watchers" }

// watched reports whether anybody may watch the events.
func (p *taskEventPublisher) watched() bool {
	if p.local.Load() > 0 {
		return true
	}
	if time.Since(p.checkedAt) > taskWatchersRecheck {
		p.remote = p.countWatchers()
		p.checkedAt = time.Now()
	}
	return p.remote != 0
}

// countWatchers asks the broker for the watchers queue's consumers: 0 when
// it does not exist, -1 when the broker could not be asked.
func (p *taskEventPublisher) countWatchers() int {
	if p.check == nil || p.check.IsClosed() {
		ch, err := p.conn.Channel()
		if err != nil {
			return -1
		}
		p.check = ch
	}
	q, err := p.check.QueueDeclarePassive(p.watchers, false, true, false, false, nil)
	var aerr *amqp.Error
	switch {
	case err == nil:
		return q.Consumers
	case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
		return 0 // the 404 closed the channel; the next check opens one
	}
	return -1
}

// publish hands ev to the publishing goroutine without blocking.
func (p *taskEventPublisher) publish(ev *warrenv1.TaskEvent) {
	select {
	case p.queue <- ev:
	default:
		p.log.Debug("task event dropped: buffer full", "task", ev.GetTaskId(), "state", ev.GetState())
	}
}

func (p *taskEventPublisher) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case ev := <-p.queue:
			if !p.watched() {
				continue
			}
			if err := p.send(ev); err != nil {
				p.log.Debug("task event not published", "task", ev.GetTaskId(), "state", ev.GetState(), "err", err)
			}
		}
	}
}

// send publishes one event, reopening the channel if a 404 (someone deleted
// the exchange) closed it.
func (p *taskEventPublisher) send(ev *warrenv1.TaskEvent) error {
	body, err := protojson.Marshal(ev)
	if err != nil {
		return err
	}
	if p.ch.IsClosed() {
		ch, err := p.conn.Channel()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		p.ch = ch
	}
	return p.ch.Publish(p.exchange, ev.GetTaskId(), false, false, amqp.Publishing{
		ContentType: "application/json",
		Body:        body,
	})
}

// WatchTasks implements warren.v1.TaskService. Each stream consumes an
// exclusive, auto-delete queue of its own bound to the events exchange (by
// task id, or "#" for all tasks); response headers are sent once the
// binding is in place, so a client that waits for them (Header) sees every
// later event. The calling goroutine is the only one that calls Send.
func (s *TaskService) WatchTasks(req *warrenv1.WatchTasksRequest, stream grpc.ServerStreamingServer[warrenv1.WatchTasksResponse]) error {
	if len(req.GetTaskId()) > taskMaxIDLen {
		// No task has such an id, and a binding key over 255 bytes would
		// make amqp091-go close the whole connection.
		return status.Errorf(codes.InvalidArgument, "gateway: task id longer than %d bytes", taskMaxIDLen)
	}
	conn, _, _, err := s.current()
	if err != nil {
		return queueStatus(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return queueStatus(fmt.Errorf("open channel: %w", err))
	}
	defer ch.Close()
	q, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{"x-max-length": int64(s.cfg.WatchMaxLength)})
	if err != nil {
		return queueStatus(fmt.Errorf("declare watch queue: %w", err))
	}
	key := "#"
	if id := req.GetTaskId(); id != "" && !strings.ContainsAny(id, "*#") {
		key = id
	}
	if err := ch.QueueBind(q.Name, key, s.cfg.EventsExchange, false, nil); err != nil {
		return queueStatus(fmt.Errorf("bind watch queue: %w", err))
	}
	if err := ch.Qos(s.cfg.WatchPrefetch, 0, false); err != nil {
		return queueStatus(fmt.Errorf("set prefetch: %w", err))
	}
	deliveries, err := ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		return queueStatus(fmt.Errorf("consume watch queue: %w", err))
	}
	// Count as a watcher, here and for every gateway (see
	// taskEventPublisher): a consumer on the watchers queue, which never
	// holds a message.
	wq := taskWatchersQueue(s.cfg.EventsExchange)
	if _, err := ch.QueueDeclare(wq, false, true, false, false, nil); err != nil {
		return queueStatus(fmt.Errorf("declare watchers queue: %w", err))
	}
	if _, err := ch.Consume(wq, "", true, false, false, false, nil); err != nil {
		return queueStatus(fmt.Errorf("consume watchers queue: %w", err))
	}
	s.localWatchers.Add(1)
	defer s.localWatchers.Add(-1)
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.shutdown:
			return status.Error(codes.Unavailable, errQueueShutdown.Error())
		case d, ok := <-deliveries:
			if !ok {
				return status.Error(codes.Unavailable, "gateway: task events consumer ended (broker connection lost)")
			}
			var ev warrenv1.TaskEvent
			if err := protojson.Unmarshal(d.Body, &ev); err != nil {
				s.cfg.Logger.Warn("undecodable task event", "err", err)
				_ = d.Ack(false)
				continue
			}
			if req.GetTaskId() != "" && ev.GetTaskId() != req.GetTaskId() {
				_ = d.Ack(false)
				continue
			}
			if err := stream.Send(&warrenv1.WatchTasksResponse{Event: &ev}); err != nil {
				return err
			}
			_ = d.Ack(false)
		}
	}
}
