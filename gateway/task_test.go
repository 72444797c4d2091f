package gateway_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/internal/brokertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// taskEnv is a gateway serving TaskService and QueueService over bufconn,
// connected to the test broker by a Supervisor of its own.
type taskEnv struct {
	tasks  warrenv1.TaskServiceClient
	queues warrenv1.QueueServiceClient
	task   *gateway.TaskService
	queue  *gateway.QueueService
}

// taskStartEnv starts a gateway and stops it at cleanup.
func taskStartEnv(t testing.TB, tcfg gateway.TaskConfig, qcfg gateway.QueueConfig) *taskEnv {
	t.Helper()
	url := brokertest.Require(t)
	task := gateway.NewTaskService(tcfg)
	queue := gateway.NewQueueService(qcfg)
	sup := amqpx.New(amqpx.Config{URLs: []string{url}, Name: "gateway " + t.Name()}, task, queue)
	ctx, cancel := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		_ = sup.Run(ctx)
	}()

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	warrenv1.RegisterTaskServiceServer(srv, task)
	warrenv1.RegisterQueueServiceServer(srv, queue)
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		_ = srv.Serve(lis)
	}()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc client: %v", err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		task.Shutdown()
		queue.Shutdown()
		srv.Stop()
		<-srvDone
		cancel()
		<-supDone
	})
	taskWaitFor(t, 10*time.Second, "gateway connected to the broker", sup.Connected)
	return &taskEnv{
		tasks:  warrenv1.NewTaskServiceClient(cc),
		queues: warrenv1.NewQueueServiceClient(cc),
		task:   task,
		queue:  queue,
	}
}

// taskWaitFor polls cond until it holds or the timeout passes.
func taskWaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func taskTestCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func taskWantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (err %v), want %v", got, err, want)
	}
}

// queueReady returns the ready messages of a queue.
func queueReady(t testing.TB, ch *amqp.Channel, name string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare %q: %v", name, err)
	}
	return q.Messages
}

func TestTaskSubmitIsPersistentAndConfirmed(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "tasks")
	env := taskStartEnv(t, gateway.TaskConfig{Queue: queue, EventsExchange: brokertest.Name(t, "events")}, gateway.QueueConfig{})
	ctx := taskTestCtx(t)
	ch := brokertest.Channel(t)

	tests := []struct {
		name, body, key string
	}{
		{name: "generated id", body: "Hola..."},
		{name: "idempotency key", body: "Hello World!", key: "order-42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := env.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: tt.body, IdempotencyKey: tt.key})
			if err != nil {
				t.Fatalf("SubmitTask: %v", err)
			}
			if tt.key != "" && resp.GetTaskId() != tt.key {
				t.Errorf("got task id %q, want the idempotency key %q", resp.GetTaskId(), tt.key)
			}
			if resp.GetTaskId() == "" {
				t.Fatal("got an empty task id")
			}
			d, ok, err := ch.Get(queue, true)
			if err != nil || !ok {
				t.Fatalf("basic.get %q: ok=%v err=%v, want a message", queue, ok, err)
			}
			if string(d.Body) != tt.body || d.MessageId != resp.GetTaskId() || d.DeliveryMode != amqp.Persistent {
				t.Errorf("got body %q id %q delivery mode %d, want %q %q %d",
					d.Body, d.MessageId, d.DeliveryMode, tt.body, resp.GetTaskId(), amqp.Persistent)
			}
		})
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("task queue is not durable (passive declare with durable=true: %v)", err)
	}
	_ = q
}

func TestTaskSubmitReturnedIsUnavailable(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "tasks")
	env := taskStartEnv(t, gateway.TaskConfig{Queue: queue, EventsExchange: brokertest.Name(t, "events")}, gateway.QueueConfig{})
	ctx := taskTestCtx(t)
	// The queue goes away behind the gateway's back: the mandatory
	// publishing is returned (and then confirmed), which must not count.
	if _, err := brokertest.Channel(t).QueueDelete(queue, false, false, false); err != nil {
		t.Fatalf("delete queue: %v", err)
	}
	for i := range 3 {
		_, err := env.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: fmt.Sprintf("lost %d", i)})
		taskWantCode(t, err, codes.Unavailable)
		if !strings.Contains(err.Error(), "returned") {
			t.Errorf("got %v, want an error that says the broker returned the task", err)
		}
	}
}

func TestTaskSubmitWithoutBrokerIsUnavailable(t *testing.T) {
	t.Parallel()
	svc := gateway.NewTaskService(gateway.TaskConfig{})
	_, err := svc.SubmitTask(context.Background(), &warrenv1.SubmitTaskRequest{Body: "x"})
	taskWantCode(t, err, codes.Unavailable)
	_, err = svc.SubmitTask(context.Background(), &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: strings.Repeat("k", 201)})
	taskWantCode(t, err, codes.InvalidArgument)
}

func TestTaskSubmitConcurrent(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "tasks")
	env := taskStartEnv(t, gateway.TaskConfig{Queue: queue, EventsExchange: brokertest.Name(t, "events")}, gateway.QueueConfig{})
	ctx := taskTestCtx(t)
	const n = 500
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := env.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: fmt.Sprintf("task %d", i)})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = resp.GetTaskId()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("SubmitTask: %v", err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	if len(seen) != n {
		t.Errorf("got %d distinct task ids, want %d", len(seen), n)
	}
	if got := queueReady(t, brokertest.Channel(t), queue); got != n {
		t.Errorf("got %d messages in the queue, want %d (every confirmed task)", got, n)
	}
}

func TestTaskExistingQuorumQueueIsUsed(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "tasks")
	// The current official tutorial declares task_queue as a quorum queue.
	if _, err := brokertest.Channel(t).QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("declare quorum queue: %v", err)
	}
	env := taskStartEnv(t, gateway.TaskConfig{Queue: queue, EventsExchange: brokertest.Name(t, "events")}, gateway.QueueConfig{})
	if _, err := env.tasks.SubmitTask(taskTestCtx(t), &warrenv1.SubmitTaskRequest{Body: "into a quorum queue"}); err != nil {
		t.Fatalf("SubmitTask: %v", err)
	}
	if got := queueReady(t, brokertest.Channel(t), queue); got != 1 {
		t.Errorf("got %d messages, want 1", got)
	}
}

// watch opens a WatchTasks stream and waits until it is bound.
func taskWatch(t testing.TB, ctx context.Context, c warrenv1.TaskServiceClient, id string) grpc.ServerStreamingClient[warrenv1.WatchTasksResponse] {
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

func TestTaskWatchQueued(t *testing.T) {
	t.Parallel()
	env := taskStartEnv(t, gateway.TaskConfig{Queue: brokertest.Name(t, "tasks"), EventsExchange: brokertest.Name(t, "events")}, gateway.QueueConfig{})
	ctx := taskTestCtx(t)
	all := taskWatch(t, ctx, env.tasks, "")
	one := taskWatch(t, ctx, env.tasks, "the-one")

	before := time.Now().Add(-time.Second)
	for _, key := range []string{"another", "the-one"} {
		if _, err := env.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: key}); err != nil {
			t.Fatalf("SubmitTask: %v", err)
		}
	}
	for _, want := range []string{"another", "the-one"} {
		resp, err := all.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		ev := resp.GetEvent()
		if ev.GetTaskId() != want || ev.GetState() != warrenv1.TaskState_TASK_STATE_QUEUED || ev.GetTime().AsTime().Before(before) {
			t.Errorf("got event %v, want QUEUED for %s with a current time", ev, want)
		}
	}
	resp, err := one.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if got := resp.GetEvent().GetTaskId(); got != "the-one" {
		t.Errorf("stream for the-one got an event of %q", got)
	}
}

func TestTaskShutdownEndsWatch(t *testing.T) {
	t.Parallel()
	env := taskStartEnv(t, gateway.TaskConfig{Queue: brokertest.Name(t, "tasks"), EventsExchange: brokertest.Name(t, "events")}, gateway.QueueConfig{})
	ctx := taskTestCtx(t)
	stream := taskWatch(t, ctx, env.tasks, "")
	env.task.Shutdown()
	_, err := stream.Recv()
	taskWantCode(t, err, codes.Unavailable)
	_, err = env.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "late"})
	taskWantCode(t, err, codes.Unavailable)
}

func TestTaskQueueStats(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "tasks")
	env := taskStartEnv(t, gateway.TaskConfig{Queue: queue, EventsExchange: brokertest.Name(t, "events")}, gateway.QueueConfig{})
	ctx := taskTestCtx(t)
	for i := range 3 {
		if _, err := env.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: fmt.Sprint(i)}); err != nil {
			t.Fatalf("SubmitTask: %v", err)
		}
	}
	// A consumer with prefetch 1 that never acknowledges holds one.
	ch := brokertest.Channel(t)
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-deliveries

	want := &warrenv1.GetQueueStatsResponse{Queue: queue, MessagesReady: 2, MessagesUnacknowledged: 1, Consumers: 1}
	var got *warrenv1.GetQueueStatsResponse
	// The management API refreshes its counts every 5s.
	taskWaitFor(t, 15*time.Second, "stats ready=2 unacked=1 consumers=1", func() bool {
		got, err = env.tasks.GetQueueStats(ctx, &warrenv1.GetQueueStatsRequest{})
		if err != nil {
			t.Fatalf("GetQueueStats: %v", err)
		}
		return got.GetQueue() == want.GetQueue() && got.GetMessagesReady() == want.GetMessagesReady() &&
			got.GetMessagesUnacknowledged() == want.GetMessagesUnacknowledged() && got.GetConsumers() == want.GetConsumers()
	})
}

func TestTaskQueueStatsWithoutManagement(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: as if the plugin were not enabled.
	env := taskStartEnv(t, gateway.TaskConfig{
		Queue: brokertest.Name(t, "tasks"), EventsExchange: brokertest.Name(t, "events"),
		ManagementURL: "http://guest:guest@127.0.0.1:1",
	}, gateway.QueueConfig{})
	_, err := env.tasks.GetQueueStats(taskTestCtx(t), &warrenv1.GetQueueStatsRequest{})
	taskWantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "rabbitmq-plugins enable rabbitmq_management") {
		t.Errorf("got %v, want it to say how to enable the management plugin", err)
	}
	if strings.Contains(err.Error(), "guest:guest") {
		t.Errorf("got %v, which shows the password", err)
	}
}

// taskProxy is a TCP proxy in front of the broker that can hold back what
// the broker sends (so confirms do not arrive) and cut every connection,
// without touching the shared broker.
type taskProxy struct {
	lis net.Listener
	up  string

	mu    sync.Mutex
	held  chan struct{} // closed when not held
	conns []net.Conn
	wg    sync.WaitGroup
}

func taskStartProxy(t testing.TB, upstream string) *taskProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &taskProxy{lis: lis, up: upstream, held: make(chan struct{})}
	close(p.held)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = lis.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *taskProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.up)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.pipe(u, c, false) }()
		go func() { defer p.wg.Done(); p.pipe(c, u, true) }()
	}
}

// pipe copies src to dst; the broker-to-client direction waits while held.
func (p *taskProxy) pipe(dst, src net.Conn, gated bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && gated {
			p.mu.Lock()
			gate := p.held
			p.mu.Unlock()
			<-gate
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = dst.Close()
			return
		}
	}
}

// hold stops forwarding what the broker sends.
func (p *taskProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = make(chan struct{})
}

// cut closes every proxied connection and stops holding.
func (p *taskProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	select {
	case <-p.held:
	default:
		close(p.held)
	}
}

// TestTaskConnectionLostBeforeConfirm: the broker got the task but the
// confirm never reached the gateway before the connection died. The
// outcome is unknown to the gateway, so the call fails with UNAVAILABLE,
// never success; after the Supervisor reconnected, submissions work again.
func TestTaskConnectionLostBeforeConfirm(t *testing.T) {
	t.Parallel()
	uri, err := amqp.ParseURI(brokertest.Require(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := taskStartProxy(t, net.JoinHostPort(uri.Host, fmt.Sprint(uri.Port)))
	uri.Host, uri.Port = "127.0.0.1", proxy.lis.Addr().(*net.TCPAddr).Port
	queue := brokertest.Name(t, "tasks")
	task := gateway.NewTaskService(gateway.TaskConfig{Queue: queue, EventsExchange: brokertest.Name(t, "events"), ConfirmChannels: 4})
	sup := amqpx.New(amqpx.Config{URLs: []string{uri.String()}, Name: "proxied " + t.Name(), MinBackoff: 50 * time.Millisecond}, task)
	ctx, cancel := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		_ = sup.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-supDone })
	taskWaitFor(t, 10*time.Second, "connected through the proxy", sup.Connected)

	// Open the confirm channels first: opening one needs the broker's answer.
	for range 4 {
		if _, err := task.SubmitTask(taskTestCtx(t), &warrenv1.SubmitTaskRequest{Body: "warm-up"}); err != nil {
			t.Fatalf("SubmitTask: %v", err)
		}
	}
	proxy.hold()
	result := make(chan error, 1)
	go func() {
		_, err := task.SubmitTask(taskTestCtx(t), &warrenv1.SubmitTaskRequest{Body: "in doubt"})
		result <- err
	}()
	ch := brokertest.Channel(t)
	taskWaitFor(t, 5*time.Second, "the task reached the broker", func() bool { return queueReady(t, ch, queue) == 5 })
	select {
	case err := <-result:
		t.Fatalf("SubmitTask returned %v before any confirm reached the gateway", err)
	case <-time.After(100 * time.Millisecond):
	}
	proxy.cut()
	select {
	case err := <-result:
		taskWantCode(t, err, codes.Unavailable)
	case <-time.After(10 * time.Second):
		t.Fatal("SubmitTask still waiting 10s after the connection was cut")
	}
	taskWaitFor(t, 10*time.Second, "reconnected", sup.Connected)
	taskWaitFor(t, 10*time.Second, "a submission succeeds again", func() bool {
		_, err := task.SubmitTask(taskTestCtx(t), &warrenv1.SubmitTaskRequest{Body: "after"})
		return err == nil
	})
}

// TestTaskQueuedEventsOnlyWhenWatched: a gateway publishes QUEUED events
// only while some WatchTasks stream, on any gateway, exists; a watcher on
// another gateway gets them.
func TestTaskQueuedEventsOnlyWhenWatched(t *testing.T) {
	t.Parallel()
	events := brokertest.Name(t, "events")
	queue := brokertest.Name(t, "tasks")
	a := taskStartEnv(t, gateway.TaskConfig{Queue: queue, EventsExchange: events}, gateway.QueueConfig{})
	b := taskStartEnv(t, gateway.TaskConfig{Queue: queue, EventsExchange: events}, gateway.QueueConfig{})
	ctx := taskTestCtx(t)

	// A plain queue bound to the events exchange sees whatever is
	// published there; it is not a watcher.
	ch := brokertest.Channel(t)
	spy := brokertest.Name(t, "spy")
	if _, err := ch.QueueDeclare(spy, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(spy, "#", events, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: "unwatched"}); err != nil {
		t.Fatalf("SubmitTask: %v", err)
	}
	time.Sleep(time.Second)
	if n := queueReady(t, ch, spy); n != 0 {
		t.Fatalf("%d events published with nobody watching, want 0", n)
	}

	stream := taskWatch(t, ctx, b.tasks, "")
	time.Sleep(700 * time.Millisecond) // longer than gateway A's recheck
	if _, err := a.tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: "watched"}); err != nil {
		t.Fatalf("SubmitTask: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if ev := resp.GetEvent(); ev.GetTaskId() != "watched" || ev.GetState() != warrenv1.TaskState_TASK_STATE_QUEUED {
		t.Errorf("watcher on gateway B got %v, want QUEUED for the task submitted to gateway A", ev)
	}
}
