package tasksvc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"

	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// names are the entities of one test. brokertest.Name deletes them at
// cleanup, with the ones warren derives from them (the dead-letter queue,
// the watchers queue).
type names struct{ queue, events string }

func newNames(t testing.TB) names {
	t.Helper()
	return names{queue: brokertest.Name(t, "tasks"), events: brokertest.Name(t, "events")}
}

func (n names) dead() string { return n.queue + tasksvc.DeadLetterSuffix }

// config is a Service config on the test's entities.
func (n names) config() tasksvc.Config {
	return tasksvc.Config{Queue: n.queue, EventsExchange: n.events, ManagementURL: brokertest.ManagementURL()}
}

// startGateway serves a Service with cfg in a gateway for the test and
// returns its client.
func startGateway(t testing.TB, cfg tasksvc.Config) (warrenv1.TaskServiceClient, *warrentest.Gateway) {
	t.Helper()
	gw := warrentest.StartGateway(t, gateway.Config{}, tasksvc.New(cfg))
	return warrenv1.NewTaskServiceClient(gw.Conn), gw
}

// declareQueue declares the work queue as a worker would by default (a
// durable quorum queue), for tests that run no worker (the gateway does
// not declare it).
func declareQueue(t testing.TB, name string) {
	t.Helper()
	if _, err := brokertest.Channel(t).QueueDeclare(name, true, false, false, false, brokertest.QuorumArgs); err != nil {
		t.Fatalf("declare queue %q: %v", name, err)
	}
}

// taskLog records what the workers of a test did.
type taskLog struct {
	mu      sync.Mutex
	started []taskRecord
	done    []taskRecord
}

type taskRecord struct {
	worker, body string
	at           time.Time
}

func (l *taskLog) doneCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

func (l *taskLog) snapshot() (started, done []taskRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]taskRecord(nil), l.started...), append([]taskRecord(nil), l.done...)
}

func (l *taskLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started, l.done = nil, nil
}

// handler is the tutorial's sleep-per-dot handler that records into l.
// Bodies starting with "poison" always fail.
func (l *taskLog) handler(id string, unit time.Duration) tasksvc.Handler {
	sleep := tasksvc.Sleep(unit)
	return func(ctx context.Context, body []byte) error {
		l.mu.Lock()
		l.started = append(l.started, taskRecord{id, string(body), time.Now()})
		l.mu.Unlock()
		if strings.HasPrefix(string(body), "poison") {
			return errors.New("poison task")
		}
		if err := sleep(ctx, body); err != nil {
			return err
		}
		l.mu.Lock()
		l.done = append(l.done, taskRecord{id, string(body), time.Now()})
		l.mu.Unlock()
		return nil
	}
}

// startWorker runs a worker with a connection of its own (a worker.Group)
// until cleanup, which drains it as SIGTERM would. The worker's handler
// records into l unless cfg has one.
func startWorker(t testing.TB, n names, id string, l *taskLog, cfg tasksvc.WorkerConfig) *tasksvc.Worker {
	t.Helper()
	cfg.Queue, cfg.EventsExchange, cfg.WorkerID = n.queue, n.events, id
	if cfg.Handler == nil {
		cfg.Handler = l.handler(id, cfg.Unit)
	}
	w := tasksvc.NewWorker(cfg)
	warrentest.StartWorkers(t, worker.Config{}, w)
	return w
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func submit(t testing.TB, ctx context.Context, c warrenv1.TaskServiceClient, body string) string {
	t.Helper()
	resp, err := c.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: body})
	if err != nil {
		t.Fatalf("SubmitTask(%q): %v", body, err)
	}
	return resp.GetTaskId()
}

// submitMany submits n tasks from concurrency goroutines and returns the
// first error. It may run on a goroutine other than the test's.
func submitMany(ctx context.Context, client warrenv1.TaskServiceClient, concurrency, n int, format string) error {
	next := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for i := range next {
				if _, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: fmt.Sprintf(format, i)}); err != nil {
					select {
					case errs <- fmt.Errorf("SubmitTask %d: %w", i, err):
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

// queueDepth returns a queue's ready messages and consumers, live.
func queueDepth(t testing.TB, ch *amqp.Channel, name string) (ready, consumers int) {
	t.Helper()
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare %q: %v", name, err)
	}
	return q.Messages, q.Consumers
}

// consumerCount returns a queue's consumers, or -1 while it does not
// exist (a worker declares it when it starts). It opens a channel of conn
// for the question, as a 404 closes it.
func consumerCount(t testing.TB, conn *amqp.Connection, name string) int {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Consumers
}

// watch opens a WatchTasks stream and waits until it is bound.
func watch(t testing.TB, ctx context.Context, c warrenv1.TaskServiceClient, id string) grpc.ServerStreamingClient[warrenv1.WatchTasksResponse] {
	t.Helper()
	stream, err := c.WatchTasks(ctx, &warrenv1.WatchTasksRequest{TaskId: id})
	if err != nil {
		t.Fatalf("WatchTasks: %v", err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatalf("WatchTasks header: %v", err)
	}
	return stream
}
