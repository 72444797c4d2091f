package tasksvc_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
)

func TestSubmitIsPersistentAndConfirmed(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue)
	client, _ := startGateway(t, n.config())
	ctx := testCtx(t)
	ch := brokertest.Channel(t)

	tests := []struct {
		name, body, key string
	}{
		{name: "generated id", body: "Hola..."},
		{name: "idempotency key", body: "Hello World!", key: "order-42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			resp, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: tt.body, IdempotencyKey: tt.key})
			if err != nil {
				t.Fatalf("SubmitTask: %v", err)
			}
			if tt.key != "" && resp.GetTaskId() != tt.key {
				t.Errorf("got task id %q, want the idempotency key %q", resp.GetTaskId(), tt.key)
			}
			if resp.GetTaskId() == "" {
				t.Fatal("got an empty task id")
			}
			d, ok, err := ch.Get(n.queue, true)
			if err != nil || !ok {
				t.Fatalf("basic.get %q: ok=%v err=%v, want a message", n.queue, ok, err)
			}
			if string(d.Body) != tt.body || d.MessageId != resp.GetTaskId() || d.DeliveryMode != amqp.Persistent ||
				d.ContentType != tasksvc.TaskContentType || d.Timestamp.Before(before.Truncate(time.Second)) {
				t.Errorf("got body %q id %q delivery mode %d content type %q timestamp %v, want %q %q %d %q and now",
					d.Body, d.MessageId, d.DeliveryMode, d.ContentType, d.Timestamp, tt.body, resp.GetTaskId(), amqp.Persistent, tasksvc.TaskContentType)
			}
		})
	}
}

// TestSubmitReturnedIsUnavailable: the queue goes away behind the
// gateway's back; the mandatory publishing is returned (and then
// confirmed), which must not count.
func TestSubmitReturnedIsUnavailable(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue)
	client, _ := startGateway(t, n.config())
	ctx := testCtx(t)
	if _, err := brokertest.Channel(t).QueueDelete(n.queue, false, false, false); err != nil {
		t.Fatalf("delete queue: %v", err)
	}
	for i := range 3 {
		_, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: fmt.Sprintf("lost %d", i)})
		warrentest.WantCode(t, err, codes.Unavailable)
		if !strings.Contains(err.Error(), "returned") {
			t.Errorf("got %v, want an error that says the broker returned the task", err)
		}
	}
}

// TestSubmitWithoutBroker: a Service whose gateway never connected fails
// fast with errors that map to UNAVAILABLE, and checks its input first.
func TestSubmitWithoutBroker(t *testing.T) {
	t.Parallel()
	svc := tasksvc.New(tasksvc.Config{})
	svc.Attach(core.NewSupervisor(core.Config{Logger: warrentest.QuietLog})) // never run
	ctx := context.Background()
	_, err := svc.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x"})
	warrentest.WantCode(t, core.Status(err), codes.Unavailable)
	_, err = svc.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: "k"})
	warrentest.WantCode(t, core.Status(err), codes.Unavailable)
	_, err = svc.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: strings.Repeat("k", tasksvc.MaxIDLen+1)})
	warrentest.WantCode(t, core.Status(err), codes.InvalidArgument)
	_, err = svc.GetQueueStats(ctx, &warrenv1.GetQueueStatsRequest{})
	warrentest.WantCode(t, core.Status(err), codes.Unavailable)
}

func TestSubmitConcurrent(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue)
	client, _ := startGateway(t, n.config())
	ctx := testCtx(t)
	const tasks = 500
	ids := make([]string, tasks)
	var wg sync.WaitGroup
	errs := make(chan error, tasks)
	for i := range tasks {
		wg.Go(func() {
			resp, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: fmt.Sprintf("task %d", i)})
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
	if len(seen) != tasks {
		t.Errorf("got %d distinct task ids, want %d", len(seen), tasks)
	}
	if got, _ := queueDepth(t, brokertest.Channel(t), n.queue); got != tasks {
		t.Errorf("got %d messages in the queue, want %d (every confirmed task)", got, tasks)
	}
}

// TestSubmitToClassicQueue: the older tutorials declare task_queue as a
// durable classic queue; submissions go there just the same.
func TestSubmitToClassicQueue(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	if _, err := brokertest.Channel(t).QueueDeclare(n.queue, true, false, false, false, nil); err != nil {
		t.Fatalf("declare classic queue: %v", err)
	}
	client, _ := startGateway(t, n.config())
	if _, err := client.SubmitTask(testCtx(t), &warrenv1.SubmitTaskRequest{Body: "into a classic queue"}); err != nil {
		t.Fatalf("SubmitTask: %v", err)
	}
	if got, _ := queueDepth(t, brokertest.Channel(t), n.queue); got != 1 {
		t.Errorf("got %d messages, want 1", got)
	}
}

// TestGatewayDeclaresOnlyTheEventsExchange (fix c): a gateway connected
// with no worker has declared the events exchange and no work queue; a
// submission is returned by the broker and fails with UNAVAILABLE at
// once, and creates nothing; once a worker declared the queue, it works.
func TestGatewayDeclaresOnlyTheEventsExchange(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	client, _ := startGateway(t, n.config())
	conn := brokertest.Dial(t)
	queueExists := func() bool {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		_, err = ch.QueueDeclarePassive(n.queue, false, false, false, false, nil)
		return err == nil
	}
	if queueExists() {
		t.Fatalf("queue %q exists after the gateway connected, want it left to the workers", n.queue)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclarePassive(n.events, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatalf("events exchange %q: %v, want the gateway to have declared it", n.events, err)
	}

	ctx := testCtx(t)
	start := time.Now()
	_, err = client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "nobody declared the queue"})
	took := time.Since(start)
	warrentest.WantCode(t, err, codes.Unavailable)
	if !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("got %v, want it to say the queue does not exist", err)
	}
	if took > time.Second {
		t.Errorf("SubmitTask took %v to fail, want at once (under 1s)", took)
	}
	if queueExists() {
		t.Errorf("queue %q exists after a failed submission, want nothing created", n.queue)
	}

	var l taskLog
	startWorker(t, n, "A", &l, tasksvc.WorkerConfig{Unit: time.Millisecond})
	submit(t, ctx, client, "after the worker.")
	warrentest.Eventually(t, 10*time.Second, "the task done", func() bool { return l.doneCount() == 1 })
	t.Logf("without a worker SubmitTask failed in %v: %v", took.Round(time.Millisecond), status.Convert(err).Message())
}

// TestSubmitWithoutDeadlineEndsAtDefaultTimeout (fix d): behind a proxy
// that stops forwarding (a black hole: the TCP connection stays up, so
// only the heartbeat, a minute here, would notice), a SubmitTask without a
// gRPC deadline ends after the default timeout, not at heartbeat detection.
func TestSubmitWithoutDeadlineEndsAtDefaultTimeout(t *testing.T) {
	t.Parallel()
	proxy, url := brokertest.Proxy(t)
	n := newNames(t)
	declareQueue(t, n.queue)
	cfg := n.config()
	cfg.DefaultTimeout = 500 * time.Millisecond
	gw := warrentest.StartGateway(t, gateway.Config{AMQP: core.Config{URLs: []string{url}, Heartbeat: time.Minute}}, tasksvc.New(cfg))
	client := warrenv1.NewTaskServiceClient(gw.Conn)
	submit(t, testCtx(t), client, "before the black hole")

	proxy.Blackhole(true)
	t.Cleanup(func() { proxy.Blackhole(false); proxy.Drop() }) // before the gateway stops
	start := time.Now()
	_, err := client.SubmitTask(context.Background(), &warrenv1.SubmitTaskRequest{Body: "into the black hole"})
	took := time.Since(start)
	if c := status.Code(err); c != codes.DeadlineExceeded && c != codes.Unavailable {
		t.Fatalf("got %v (%v), want DEADLINE_EXCEEDED or UNAVAILABLE", c, err)
	}
	if took > 3*time.Second {
		t.Fatalf("SubmitTask without a deadline took %v, want it to end soon after the 500ms default timeout", took)
	}
	t.Logf("SubmitTask without a deadline ended after %v: %v", took.Round(time.Millisecond), err)
}

func TestWatchQueued(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue)
	client, _ := startGateway(t, n.config())
	ctx := testCtx(t)
	all := watch(t, ctx, client, "")
	one := watch(t, ctx, client, "the-one")

	before := time.Now().Add(-time.Second)
	for _, key := range []string{"another", "the-one"} {
		if _, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: key}); err != nil {
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

// TestWatchNotSubmitted: a watched task whose publishing fails (no queue)
// has its QUEUED event followed by a FAILED one saying it was not
// submitted.
func TestWatchNotSubmitted(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	client, _ := startGateway(t, n.config())
	ctx := testCtx(t)
	stream := watch(t, ctx, client, "")
	_, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: "doomed"})
	warrentest.WantCode(t, err, codes.Unavailable)
	for _, want := range []warrenv1.TaskState{warrenv1.TaskState_TASK_STATE_QUEUED, warrenv1.TaskState_TASK_STATE_FAILED} {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if ev := resp.GetEvent(); ev.GetTaskId() != "doomed" || ev.GetState() != want {
			t.Fatalf("got %v, want %v for doomed", ev, want)
		}
		if ev := resp.GetEvent(); want == warrenv1.TaskState_TASK_STATE_FAILED && !strings.HasPrefix(ev.GetError(), "not submitted") {
			t.Errorf("got error %q, want one that begins %q", ev.GetError(), "not submitted")
		}
	}
}

// TestEventsInOrder (fix a): with a worker that does no work at all, a
// watcher sees every task's events in lifecycle order: QUEUED, STARTED,
// SUCCEEDED.
func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	client, _ := startGateway(t, n.config())
	noWork := func(context.Context, []byte) error { return nil }
	startWorker(t, n, "A", nil, tasksvc.WorkerConfig{Handler: noWork})
	startWorker(t, n, "B", nil, tasksvc.WorkerConfig{Handler: noWork})
	ctx := testCtx(t)
	stream := watch(t, ctx, client, "")

	const tasks = 300
	submitted := make(chan error, 1)
	// Few at a time, so the workers are idle and start each task at once:
	// that is when a STARTED event could overtake the QUEUED one.
	go func() { submitted <- submitMany(ctx, client, 4, tasks, "task %d") }()
	// The index of each task's first event of each state, in arrival order.
	seen := map[string]map[warrenv1.TaskState]int{}
	succeeded := 0
	for i := 0; succeeded < tasks; i++ {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv after %d events, %d tasks succeeded: %v", i, succeeded, err)
		}
		ev := resp.GetEvent()
		m := seen[ev.GetTaskId()]
		if m == nil {
			m = map[warrenv1.TaskState]int{}
			seen[ev.GetTaskId()] = m
		}
		if _, dup := m[ev.GetState()]; !dup {
			m[ev.GetState()] = i
			if ev.GetState() == warrenv1.TaskState_TASK_STATE_SUCCEEDED {
				succeeded++
			}
		}
	}
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	bad := 0
	for id, m := range seen {
		q, okQ := m[warrenv1.TaskState_TASK_STATE_QUEUED]
		s, okS := m[warrenv1.TaskState_TASK_STATE_STARTED]
		d := m[warrenv1.TaskState_TASK_STATE_SUCCEEDED]
		if !okQ || !okS || !(q < s && s < d) {
			if bad < 5 {
				t.Errorf("task %s: got QUEUED at %d (%v), STARTED at %d (%v), SUCCEEDED at %d; want them in that order",
					id, q, okQ, s, okS, d)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d tasks had their events out of lifecycle order", bad, tasks)
	}
}

// TestShutdownEndsWatch: the gateway's shutdown ends a WatchTasks stream
// with UNAVAILABLE; later calls fail with UNAVAILABLE too.
func TestShutdownEndsWatch(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue)
	client, gw := startGateway(t, n.config())
	ctx := testCtx(t)
	stream := watch(t, ctx, client, "")
	gw.Stop()
	_, err := stream.Recv()
	warrentest.WantCode(t, err, codes.Unavailable)
	_, err = client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "late"})
	warrentest.WantCode(t, err, codes.Unavailable)
}

// TestQueuedEventsOnlyWhenWatched: a gateway publishes QUEUED events only
// while some WatchTasks stream, on any gateway, exists; a watcher on
// another gateway gets them.
func TestQueuedEventsOnlyWhenWatched(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue)
	a, _ := startGateway(t, n.config())
	b, _ := startGateway(t, n.config())
	ctx := testCtx(t)

	// A plain queue bound to the events exchange sees whatever is
	// published there; it is not a watcher.
	ch := brokertest.Channel(t)
	spy := brokertest.Name(t, "spy")
	if _, err := ch.QueueDeclare(spy, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(spy, "#", n.events, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: "unwatched"}); err != nil {
		t.Fatalf("SubmitTask: %v", err)
	}
	time.Sleep(time.Second)
	if got, _ := queueDepth(t, ch, spy); got != 0 {
		t.Fatalf("%d events published with nobody watching, want 0", got)
	}

	// Gateway A notices the watcher on B within its recheck (half a
	// second, longer on a loaded machine): submit until it did.
	stream := watch(t, ctx, b, "")
	events := make(chan *warrenv1.TaskEvent, 64)
	go func() {
		defer close(events)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			events <- resp.GetEvent()
		}
	}()
	start := time.Now()
	for i := 0; ; i++ {
		key := fmt.Sprintf("watched-%d", i)
		if _, err := a.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: key}); err != nil {
			t.Fatalf("SubmitTask: %v", err)
		}
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the watcher's stream ended")
			}
			if !strings.HasPrefix(ev.GetTaskId(), "watched-") || ev.GetState() != warrenv1.TaskState_TASK_STATE_QUEUED {
				t.Fatalf("watcher on gateway B got %v, want QUEUED for a task submitted to gateway A", ev)
			}
			t.Logf("gateway A published QUEUED for the watcher on B after %v (%s)", time.Since(start).Round(time.Millisecond), ev.GetTaskId())
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("no QUEUED event reached the watcher on gateway B within 15s")
		}
	}
}

// TestConnectionLostBeforeConfirm: the broker got the task but the
// confirm never reached the gateway before the connection died. The
// outcome is unknown to the gateway, so the call fails with UNAVAILABLE,
// never success; after the Supervisor reconnected, submissions work again.
func TestConnectionLostBeforeConfirm(t *testing.T) {
	t.Parallel()
	uri, err := amqp.ParseURI(brokertest.Require(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startHoldProxy(t, net.JoinHostPort(uri.Host, fmt.Sprint(uri.Port)))
	uri.Host, uri.Port = "127.0.0.1", proxy.lis.Addr().(*net.TCPAddr).Port
	n := newNames(t)
	declareQueue(t, n.queue)
	gw := warrentest.StartGateway(t, gateway.Config{AMQP: core.Config{URLs: []string{uri.String()}, MinBackoff: 50 * time.Millisecond}}, tasksvc.New(n.config()))
	client := warrenv1.NewTaskServiceClient(gw.Conn)
	for range 4 {
		submit(t, testCtx(t), client, "warm-up")
	}
	proxy.hold()
	result := make(chan error, 1)
	go func() {
		_, err := client.SubmitTask(testCtx(t), &warrenv1.SubmitTaskRequest{Body: "in doubt"})
		result <- err
	}()
	ch := brokertest.Channel(t)
	warrentest.Eventually(t, 5*time.Second, "the task reached the broker", func() bool {
		ready, _ := queueDepth(t, ch, n.queue)
		return ready == 5
	})
	select {
	case err := <-result:
		t.Fatalf("SubmitTask returned %v before any confirm reached the gateway", err)
	case <-time.After(100 * time.Millisecond):
	}
	proxy.cut()
	select {
	case err := <-result:
		warrentest.WantCode(t, err, codes.Unavailable)
	case <-time.After(10 * time.Second):
		t.Fatal("SubmitTask still waiting 10s after the connection was cut")
	}
	warrentest.Eventually(t, 10*time.Second, "a submission succeeds again", func() bool {
		_, err := client.SubmitTask(testCtx(t), &warrenv1.SubmitTaskRequest{Body: "after"})
		return err == nil
	})
}

// holdProxy is a TCP proxy in front of the broker that can hold back what
// the broker sends (so confirms do not arrive, while publishings still
// reach the broker) and cut every connection. internal/faultproxy's black
// hole drops both directions, which would keep the task from the broker.
type holdProxy struct {
	lis net.Listener
	up  string

	mu    sync.Mutex
	held  chan struct{} // closed when not held
	conns []net.Conn
	wg    sync.WaitGroup
}

func startHoldProxy(t testing.TB, upstream string) *holdProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{lis: lis, up: upstream, held: make(chan struct{})}
	close(p.held)
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = lis.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *holdProxy) accept() {
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
		p.wg.Go(func() { p.pipe(u, c, false) })
		p.wg.Go(func() { p.pipe(c, u, true) })
	}
}

// pipe copies src to dst; the broker-to-client direction waits while held.
func (p *holdProxy) pipe(dst, src net.Conn, gated bool) {
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
func (p *holdProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = make(chan struct{})
}

// cut closes every proxied connection and stops holding.
func (p *holdProxy) cut() {
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

// TestWatchersShareOneQueue: a gateway carries all its WatchTasks streams
// on one queue (a core.Mux), and counts as one consumer of the watchers
// queue while it has any, and as none a little after the last one ended;
// each stream still gets its own task's events.
func TestWatchersShareOneQueue(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue)
	client, _ := startGateway(t, n.config())
	ctx, cancel := context.WithCancel(testCtx(t))
	const watchers = 300
	streams := make([]grpc.ServerStreamingClient[warrenv1.WatchTasksResponse], watchers)
	for i := range streams {
		streams[i] = watch(t, ctx, client, fmt.Sprintf("task-%d", i))
	}
	ch := brokertest.Channel(t)
	consumers := func() int {
		q, err := ch.QueueDeclarePassive(n.events+tasksvc.WatchersSuffix, false, true, false, false, nil)
		if err != nil {
			ch = brokertest.Channel(t) // a 404 closed it
			return 0
		}
		return q.Consumers
	}
	if got := consumers(); got != 1 {
		t.Fatalf("%d consumers of the watchers queue with %d streams on one gateway, want 1", got, watchers)
	}
	// Two tasks, two streams: each gets its own.
	for _, i := range []int{7, 123} {
		id := fmt.Sprintf("task-%d", i)
		if _, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x", IdempotencyKey: id}); err != nil {
			t.Fatalf("SubmitTask: %v", err)
		}
		resp, err := streams[i].Recv()
		if err != nil || resp.GetEvent().GetTaskId() != id || resp.GetEvent().GetState() != warrenv1.TaskState_TASK_STATE_QUEUED {
			t.Fatalf("stream %d: %v, %v; want QUEUED for %s", i, resp, err, id)
		}
	}
	cancel()
	warrentest.Eventually(t, 10*time.Second, "no consumer of the watchers queue once every stream ended", func() bool {
		return consumers() == 0
	})
}
