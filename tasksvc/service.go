package tasksvc

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// DefaultManagementURL is the local broker's management HTTP API, with
// the guest user.
const DefaultManagementURL = "http://guest:guest@127.0.0.1:15672"

// Config configures a Service. The zero value serves the tutorial's
// task_queue on the gateway's broker.
type Config struct {
	// Queue is the work queue tasks are published to. The gateway never
	// declares it: the workers own it (a submission while it does not
	// exist fails with UNAVAILABLE). Default: "task_queue".
	Queue string
	// EventsExchange is the topic exchange of task lifecycle events, which
	// the gateway declares (durable). Default: "warren.task.events".
	EventsExchange string
	// DefaultTimeout bounds a call that has no gRPC deadline, including
	// its wait for the broker's publisher confirm: the gateway's
	// --default-timeout. Default: 10s.
	DefaultTimeout time.Duration
	// Channels is the count of confirm-mode channels tasks are published
	// on; concurrent submissions pipeline on each. Default: 4.
	Channels int
	// WatchPrefetch is the prefetch count of the consumer that carries
	// every WatchTasks stream of the gateway (one queue for all, a
	// core.Mux). Default: 64.
	WatchPrefetch int
	// WatchMaxLength bounds the events one WatchTasks stream holds in the
	// gateway while its client reads slowly; one more ends that stream
	// with RESOURCE_EXHAUSTED (it lost events), and no other. Default:
	// 10000.
	WatchMaxLength int
	// IdempotencyWindow is how long a successful submission's idempotency
	// key is remembered: a submission with the same key within the window
	// publishes nothing and answers the first one's task id. Keys live in
	// this gateway process's memory only: two gateways (behind a load
	// balancer, say) do not share them, and a restart forgets them.
	// Default: 10 minutes.
	IdempotencyWindow time.Duration
	// IdempotencyKeys bounds the keys remembered; past it the oldest are
	// forgotten first, before their window ends. Default: 100000.
	IdempotencyKeys int
	// ManagementURL is the base URL of the RabbitMQ management HTTP API,
	// with credentials, read by GetQueueStats. It is logged (its password
	// redacted) but never sent to a caller.
	// Default: DefaultManagementURL.
	ManagementURL string
	// HTTPClient calls the management API. Default: a client with a 5s
	// timeout that keeps no idle connections (stats calls are rare, and
	// no goroutine outlives a call).
	HTTPClient *http.Client
	// Logger receives warnings. Default: the gateway's (its Supervisor's).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if c.EventsExchange == "" {
		c.EventsExchange = DefaultEventsExchange
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 10 * time.Second
	}
	if c.WatchPrefetch <= 0 {
		c.WatchPrefetch = 64
	}
	if c.WatchMaxLength <= 0 {
		c.WatchMaxLength = 10000
	}
	if c.IdempotencyWindow <= 0 {
		c.IdempotencyWindow = 10 * time.Minute
	}
	if c.IdempotencyKeys <= 0 {
		c.IdempotencyKeys = 100000
	}
	if c.ManagementURL == "" {
		c.ManagementURL = DefaultManagementURL
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment},
		}
	}
	return c
}

// Service implements warren.v1.TaskService, the gateway side of the Work
// Queues tutorial, as a gateway.Service: confirmed task submission, task
// events as a stream, and the work queue's counts.
type Service struct {
	warrenv1.UnimplementedTaskServiceServer

	cfg     Config
	log     *slog.Logger
	tasks   *core.Publisher // the work queue's publishings
	events  *core.Publisher // QUEUED events, apart: a deleted events exchange kills their channel, not the tasks'
	watch   *core.Mux       // the WatchTasks streams
	topo    *topology
	inspect *core.Inspector // the work queue's counts, the watchers count
	keys    *keyTable

	watching atomic.Int64 // WatchTasks streams on this gateway
}

// New returns a Service; it serves once a gateway attached it.
func New(cfg Config) *Service {
	cfg = cfg.withDefaults()
	return &Service{cfg: cfg, keys: newKeyTable(cfg.IdempotencyWindow, cfg.IdempotencyKeys)}
}

// Name implements gateway.Service.
func (s *Service) Name() string { return warrenv1.TaskService_ServiceDesc.ServiceName }

// Attach implements gateway.Service: the Component that declares the
// events exchange, the publishers of tasks and of events, and the
// subscriber WatchTasks streams consume with.
func (s *Service) Attach(sup *core.Supervisor) {
	s.log = s.cfg.Logger
	if s.log == nil {
		s.log = sup.Logger()
	}
	sup.Known(s.cfg.Queue, s.cfg.EventsExchange) // labels of the metrics
	s.inspect = core.NewInspector(sup, core.InspectorConfig{Timeout: s.cfg.DefaultTimeout})
	s.topo = newTopology(s.cfg.EventsExchange, s.inspect, s.log)
	sup.Add(s.topo) // before the publishers: the exchange exists before anything publishes to it
	s.tasks = core.NewPublisher(sup, core.PublisherConfig{Channels: s.cfg.Channels, Timeout: s.cfg.DefaultTimeout})
	s.events = core.NewPublisher(sup, core.PublisherConfig{Channels: 1, Timeout: s.cfg.DefaultTimeout})
	// Every WatchTasks stream of this gateway on one queue bound with their
	// keys; while there is one, the gateway consumes the watchers queue,
	// which every gateway's submissions count (topology).
	s.watch = core.NewMux(sup, core.MuxConfig{
		Exchange: s.cfg.EventsExchange, Kind: "topic",
		Prefetch: s.cfg.WatchPrefetch, MaxLength: s.cfg.WatchMaxLength,
		Presence: watchersQueue(s.cfg.EventsExchange),
	})
}

// Register implements gateway.Service.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	warrenv1.RegisterTaskServiceServer(r, s)
}

// SubmitTask publishes the task, persistent and mandatory, to the work
// queue and answers once the broker confirmed it. The task id is the
// idempotency key, or a random one without it.
func (s *Service) SubmitTask(ctx context.Context, req *warrenv1.SubmitTaskRequest) (*warrenv1.SubmitTaskResponse, error) {
	id := req.GetIdempotencyKey()
	if err := checkID("idempotency key", id); err != nil {
		return nil, err
	}
	if err := s.tasks.Ready(); err != nil {
		// Fail fast: a blocked connection would hold the watchers check
		// and the publishing until the deadline.
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		// One deadline for every wait of the call.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.DefaultTimeout)
		defer cancel()
	}
	var err error
	if id == "" {
		id = newTaskID()
		err = s.submit(ctx, id, req.GetBody())
	} else {
		err = s.keys.do(ctx, id, func() error { return s.submit(ctx, id, req.GetBody()) })
	}
	core.NoteCall(ctx, core.NoteTaskID, id)
	if err != nil {
		return nil, err
	}
	return &warrenv1.SubmitTaskResponse{TaskId: id}, nil
}

// submit publishes one task. While anybody watches, it first publishes
// the task's QUEUED event and waits for its confirm, so that the event is
// in every watcher's queue before a worker can start the task and publish
// STARTED; if the task then fails, a FAILED event says so (best effort).
func (s *Service) submit(ctx context.Context, id, body string) error {
	now := time.Now()
	queued := false
	if s.topo.watched(ctx, s.watching.Load()) {
		ev := newEvent(id, warrenv1.TaskState_TASK_STATE_QUEUED, "", 1, "")
		if err := s.publishEvent(ctx, ev); err != nil {
			s.log.Debug("tasksvc: QUEUED event not published", "task", id, "err", err)
		} else {
			queued = true
		}
	}
	err := s.tasks.Publish(ctx, &core.Message{
		RoutingKey: s.cfg.Queue,
		Mandatory:  true, // no queue → returned → core.ErrNoQueue, not a silent drop
		Publishing: amqp.Publishing{
			ContentType:  TaskContentType,
			DeliveryMode: amqp.Persistent,
			MessageId:    id,
			Timestamp:    now,
			Body:         []byte(body),
		},
	})
	if err != nil {
		err = fmt.Errorf("submit task %s to queue %q: %w", id, s.cfg.Queue, err)
		if queued {
			s.notSubmitted(ctx, id, err)
		}
		return err
	}
	return nil
}

// publishEvent publishes ev and waits for its confirm.
func (s *Service) publishEvent(ctx context.Context, ev *warrenv1.TaskEvent) error {
	m, err := eventMessage(s.cfg.EventsExchange, ev)
	if err != nil {
		return err
	}
	return s.events.Publish(ctx, m)
}

// notSubmitted publishes the FAILED event of a task whose QUEUED event
// went out but whose submission failed. It does not wait for the confirm
// (the caller is owed its answer) and does not mind the caller's cancel.
func (s *Service) notSubmitted(ctx context.Context, id string, cause error) {
	ev := newEvent(id, warrenv1.TaskState_TASK_STATE_FAILED, "", 1, "not submitted: "+cause.Error())
	m, err := eventMessage(s.cfg.EventsExchange, ev)
	if err == nil {
		_, err = s.events.PublishDeferred(context.WithoutCancel(ctx), m)
	}
	if err != nil {
		s.log.Debug("tasksvc: FAILED event not published", "task", id, "err", err)
	}
}

// WatchTasks streams the events of one task, or of all tasks, on the
// gateway's core.Mux for the events exchange: one queue for every
// WatchTasks stream of the gateway, bound with the task id (or "#") while
// a stream holds it, the events fanned out in process, at most
// WatchMaxLength waiting for one stream. The response headers go out once
// the key is bound, so a client that waits for them (Header) sees every
// later event. The calling goroutine is the only one that calls Send.
func (s *Service) WatchTasks(req *warrenv1.WatchTasksRequest, stream grpc.ServerStreamingServer[warrenv1.WatchTasksResponse]) error {
	id := req.GetTaskId()
	core.NoteCall(stream.Context(), core.NoteTaskID, id)
	if err := checkID("task id", id); err != nil {
		// No task has such an id, and a binding key over 255 bytes would
		// make amqp091-go close the whole connection.
		return err
	}
	sub, err := s.watch.Subscribe(stream.Context(), []string{bindingKey(id)})
	if err != nil {
		return fmt.Errorf("watch tasks: %w", err)
	}
	s.watching.Add(1)
	defer s.watching.Add(-1)
	if err := stream.SendHeader(nil); err != nil {
		sub.Close()
		return err
	}
	return sub.Stream(func(d *amqp.Delivery) error {
		ev, err := decodeEvent(d.Body)
		if err != nil {
			s.log.Warn("tasksvc: undecodable task event skipped", "routing_key", d.RoutingKey, "err", err)
			return nil
		}
		if id != "" && ev.GetTaskId() != id {
			return nil // bound with "#" for an id with wildcards
		}
		return stream.Send(&warrenv1.WatchTasksResponse{Event: ev})
	})
}
