package worker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/worker"
)

// taskNames are the entities of one test.
type taskNames struct{ queue, events string }

func taskNewNames(t testing.TB) taskNames {
	t.Helper()
	n := taskNames{queue: brokertest.Name(t, "tasks"), events: brokertest.Name(t, "events")}
	dead := n.queue + worker.TaskDeadLetterSuffix
	t.Cleanup(func() {
		conn, err := amqp.Dial(brokertest.URL())
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(dead, false, false, false)
		}
	})
	return n
}

// taskRunSupervisor runs a Supervisor for handlers until cleanup and waits
// until it is connected.
func taskRunSupervisor(t testing.TB, name string, handlers ...amqpx.Handler) (stop func()) {
	t.Helper()
	sup := amqpx.New(amqpx.Config{URLs: []string{brokertest.Require(t)}, Name: name}, handlers...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sup.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	taskWaitFor(t, 10*time.Second, name+" connected", sup.Connected)
	return stop
}

// taskStartGateway serves a TaskService over bufconn and returns its client.
func taskStartGateway(t testing.TB, names taskNames) warrenv1.TaskServiceClient {
	t.Helper()
	svc := gateway.NewTaskService(gateway.TaskConfig{Queue: names.queue, EventsExchange: names.events})
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	warrenv1.RegisterTaskServiceServer(srv, svc)
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
	// Cleanups run last-in first-out: the server stops before the
	// Supervisor registered below.
	taskRunSupervisor(t, "gateway "+t.Name(), svc)
	t.Cleanup(func() {
		_ = cc.Close()
		svc.Shutdown()
		srv.Stop()
		<-srvDone
	})
	return warrenv1.NewTaskServiceClient(cc)
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

// handler is the tutorial's sleep-per-dot handler that records into l.
// Bodies starting with "poison" always fail.
func (l *taskLog) handler(id string, unit time.Duration) worker.TaskHandler {
	sleep := worker.TaskSleep(unit)
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

// taskStartWorker runs a worker with its own connection until cleanup.
func taskStartWorker(t testing.TB, names taskNames, id string, l *taskLog, cfg worker.TaskConfig) *worker.Task {
	t.Helper()
	cfg.Queue, cfg.EventsExchange, cfg.WorkerID = names.queue, names.events, id
	if cfg.Handler == nil {
		cfg.Handler = l.handler(id, cfg.Unit)
	}
	w := worker.NewTask(cfg)
	taskRunSupervisor(t, "worker "+id+" "+t.Name(), w)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
	return w
}

func taskWaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func taskTestCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func taskSubmit(t testing.TB, ctx context.Context, c warrenv1.TaskServiceClient, body string) string {
	t.Helper()
	resp, err := c.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: body})
	if err != nil {
		t.Fatalf("SubmitTask(%q): %v", body, err)
	}
	return resp.GetTaskId()
}

// taskQueueDepth returns ready and consumers of a queue, live.
func taskQueueDepth(t testing.TB, ch *amqp.Channel, name string) (ready, consumers int) {
	t.Helper()
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare %q: %v", name, err)
	}
	return q.Messages, q.Consumers
}

// TestTaskRoundRobin is the tutorial's first experiment: two workers with
// no prefetch limit, tasks go to them in turn.
func TestTaskRoundRobin(t *testing.T) {
	t.Parallel()
	names := taskNewNames(t)
	client := taskStartGateway(t, names)
	var l taskLog
	taskStartWorker(t, names, "A", &l, worker.TaskConfig{Prefetch: -1, Unit: time.Millisecond})
	taskStartWorker(t, names, "B", &l, worker.TaskConfig{Prefetch: -1, Unit: time.Millisecond})
	ctx := taskTestCtx(t)
	const n = 10
	for i := range n {
		taskSubmit(t, ctx, client, fmt.Sprintf("task %d.", i))
	}
	taskWaitFor(t, 10*time.Second, "10 tasks done", func() bool { return l.doneCount() == n })
	started, _ := l.snapshot()
	byBody := map[string]string{}
	for _, r := range started {
		byBody[r.body] = r.worker
	}
	count := map[string]int{}
	for i := range n {
		w := byBody[fmt.Sprintf("task %d.", i)]
		count[w]++
		if i > 0 && w == byBody[fmt.Sprintf("task %d.", i-1)] {
			t.Errorf("tasks %d and %d both went to worker %s, want them in turn", i-1, i, w)
		}
	}
	if count["A"] != n/2 || count["B"] != n/2 {
		t.Errorf("got A=%d B=%d tasks, want %d each", count["A"], count["B"], n/2)
	}
}

// TestTaskFairDispatch submits one long task, then short ones. With
// prefetch 1 the worker busy with the long task gets none of them, so no
// short task waits for the long one. Without a prefetch limit (the
// control case) the broker hands the busy worker its share anyway and
// those short tasks wait behind the long one.
func TestTaskFairDispatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		prefetch int
		wantHeld bool // some short task finished after the long one
	}{
		{name: "prefetch 1", prefetch: 1, wantHeld: false},
		{name: "no prefetch limit", prefetch: -1, wantHeld: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			names := taskNewNames(t)
			client := taskStartGateway(t, names)
			var l taskLog
			const unit = 20 * time.Millisecond
			taskStartWorker(t, names, "A", &l, worker.TaskConfig{Prefetch: tt.prefetch, Unit: unit})
			taskStartWorker(t, names, "B", &l, worker.TaskConfig{Prefetch: tt.prefetch, Unit: unit})
			ctx := taskTestCtx(t)
			long := "long" + strings.Repeat(".", 40) // 800ms
			taskSubmit(t, ctx, client, long)
			taskWaitFor(t, 5*time.Second, "the long task started", func() bool {
				s, _ := l.snapshot()
				return len(s) == 1
			})
			const shorts = 8
			for i := range shorts {
				taskSubmit(t, ctx, client, fmt.Sprintf("short %d.", i)) // 20ms
			}
			taskWaitFor(t, 10*time.Second, "all tasks done", func() bool { return l.doneCount() == shorts+1 })
			_, done := l.snapshot()
			var longDone taskRecord
			for _, r := range done {
				if r.body == long {
					longDone = r
				}
			}
			held, onLongWorker := 0, 0
			for _, r := range done {
				if r.body == long {
					continue
				}
				if r.at.After(longDone.at) {
					held++
				}
				if r.worker == longDone.worker {
					onLongWorker++
				}
			}
			t.Logf("long task on %s; %d short tasks on the same worker; %d finished after the long one", longDone.worker, onLongWorker, held)
			if got := held > 0; got != tt.wantHeld {
				t.Errorf("got %d short tasks held up by the long one, want held=%v", held, tt.wantHeld)
			}
			if tt.prefetch == 1 && onLongWorker != 0 {
				t.Errorf("got %d short tasks on the busy worker, want 0 with prefetch 1", onLongWorker)
			}
		})
	}
}

// TestTaskThousandExactlyOnce: with no worker dying every task runs once.
func TestTaskThousandExactlyOnce(t *testing.T) {
	t.Parallel()
	names := taskNewNames(t)
	client := taskStartGateway(t, names)
	var l taskLog
	taskStartWorker(t, names, "A", &l, worker.TaskConfig{Unit: time.Millisecond})
	taskStartWorker(t, names, "B", &l, worker.TaskConfig{Unit: time.Millisecond})
	ctx := taskTestCtx(t)
	const n = 1000
	taskSubmitMany(t, ctx, client, n, "task %d")

	taskWaitFor(t, 30*time.Second, "1000 tasks done", func() bool { return l.doneCount() >= n })
	ch := brokertest.Channel(t)
	if ready, _ := taskQueueDepth(t, ch, names.queue); ready != 0 {
		t.Errorf("got %d tasks still ready, want 0", ready)
	}
	time.Sleep(200 * time.Millisecond) // room for a stray redelivery
	_, done := l.snapshot()
	runs := map[string]int{}
	perWorker := map[string]int{}
	for _, r := range done {
		runs[r.body]++
		perWorker[r.worker]++
	}
	for i := range n {
		if got := runs[fmt.Sprintf("task %d", i)]; got != 1 {
			t.Errorf("task %d ran %d times, want exactly 1", i, got)
		}
	}
	if len(done) != n {
		t.Errorf("got %d runs, want %d", len(done), n)
	}
	t.Logf("runs per worker: %v", perWorker)
}

// taskSubmitMany submits n tasks from 64 goroutines.
func taskSubmitMany(t testing.TB, ctx context.Context, client warrenv1.TaskServiceClient, n int, format string) {
	t.Helper()
	next := make(chan int)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range next {
				if _, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: fmt.Sprintf(format, i)}); err != nil {
					select {
					case errs <- err:
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
	for err := range errs {
		t.Fatalf("SubmitTask: %v", err)
	}
}

// taskChildWorker starts this test binary as a tasks worker process and
// returns the lines it prints. The process is killed at cleanup.
func taskChildWorker(t testing.TB, names taskNames, unit time.Duration) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", taskChildEnv, names.queue, names.events, unit.Milliseconds()))
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child worker: %v", err)
	}
	lines := make(chan string, 4096)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-readDone
	})
	return cmd, lines
}

// TestTaskKillWorkerProcess: a worker process killed with SIGKILL in the
// middle of a task loses nothing; the broker delivers the task again to
// the other worker, which completes it.
func TestTaskKillWorkerProcess(t *testing.T) {
	t.Parallel()
	names := taskNewNames(t)
	client := taskStartGateway(t, names)
	ch := brokertest.Channel(t)
	cmd, lines := taskChildWorker(t, names, 100*time.Millisecond)
	taskWaitFor(t, 10*time.Second, "child worker consuming", func() bool {
		_, consumers := taskQueueDepth(t, ch, names.queue)
		return consumers == 1
	})
	ctx := taskTestCtx(t)
	body := "kill me mid-task......" // 600ms in the child
	id := taskSubmit(t, ctx, client, body)
	select {
	case line := <-lines:
		if line != "started "+body {
			t.Fatalf("child printed %q, want %q", line, "started "+body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child worker did not start the task within 10s")
	}
	// Now the other worker joins; with prefetch 1 it is idle.
	var l taskLog
	taskStartWorker(t, names, "survivor", &l, worker.TaskConfig{Unit: time.Millisecond})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 child: %v", err)
	}
	taskWaitFor(t, 10*time.Second, "the task completed on the survivor", func() bool { return l.doneCount() == 1 })
	_, done := l.snapshot()
	if done[0].body != body || done[0].worker != "survivor" {
		t.Errorf("got %+v, want %q done by survivor", done[0], body)
	}
	for line := range lines {
		if strings.HasPrefix(line, "done ") {
			t.Errorf("child printed %q after SIGKILL", line)
		}
	}
	if ready, _ := taskQueueDepth(t, ch, names.queue); ready != 0 {
		t.Errorf("got %d ready tasks, want 0", ready)
	}
	t.Logf("task %s: started in the child (pid %d), SIGKILL, completed by the survivor", id, cmd.Process.Pid)
}

// TestTaskThousandWithDeath: 1,000 tasks over a child worker process and
// an in-process one; the child is killed with SIGKILL after 100 tasks.
// Every task runs at least once.
func TestTaskThousandWithDeath(t *testing.T) {
	t.Parallel()
	names := taskNewNames(t)
	client := taskStartGateway(t, names)
	ch := brokertest.Channel(t)
	cmd, lines := taskChildWorker(t, names, time.Millisecond)
	var l taskLog
	taskStartWorker(t, names, "survivor", &l, worker.TaskConfig{Unit: time.Millisecond})
	taskWaitFor(t, 10*time.Second, "two consumers", func() bool {
		_, consumers := taskQueueDepth(t, ch, names.queue)
		return consumers == 2
	})
	ctx := taskTestCtx(t)
	const n = 1000
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		taskSubmitMany(t, ctx, client, n, "task %d..")
	}()
	childDone := map[string]int{}
	killed := false
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
read:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break read // the child is gone
			}
			if body, ok := strings.CutPrefix(line, "done "); ok {
				childDone[body]++
			}
			if !killed && len(childDone) >= 100 {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatalf("kill -9 child: %v", err)
				}
				killed = true
			}
		case <-timeout.C:
			t.Fatalf("child worker: no more output after 30s; %d tasks done, killed=%v", len(childDone), killed)
		}
	}
	<-submitted
	if !killed {
		t.Fatalf("child finished only %d tasks and was never killed", len(childDone))
	}
	taskWaitFor(t, 30*time.Second, "every task done", func() bool {
		_, done := l.snapshot()
		seen := map[string]bool{}
		for b := range childDone {
			seen[b] = true
		}
		for _, r := range done {
			seen[r.body] = true
		}
		return len(seen) == n
	})
	if ready, _ := taskQueueDepth(t, ch, names.queue); ready != 0 {
		t.Errorf("got %d ready tasks, want 0", ready)
	}
	_, done := l.snapshot()
	twice := 0
	for _, r := range done {
		if childDone[r.body] > 0 {
			twice++
		}
	}
	t.Logf("child ran %d tasks before SIGKILL, survivor %d; %d ran on both (at least once)", len(childDone), len(done), twice)
}

// TestTaskPoisonDeadLettered: a task that always fails is tried
// MaxAttempts times and then lies in the dead-letter queue; the tasks
// around it are not disturbed, and the events tell the story.
func TestTaskPoisonDeadLettered(t *testing.T) {
	t.Parallel()
	names := taskNewNames(t)
	client := taskStartGateway(t, names)
	var l taskLog
	taskStartWorker(t, names, "A", &l, worker.TaskConfig{Unit: time.Millisecond, MaxAttempts: 3})
	ctx := taskTestCtx(t)
	events, err := client.WatchTasks(ctx, &warrenv1.WatchTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Header(); err != nil {
		t.Fatal(err)
	}
	id := taskSubmit(t, ctx, client, "poison pill")
	taskSubmit(t, ctx, client, "healthy.")

	dead := names.queue + worker.TaskDeadLetterSuffix
	ch := brokertest.Channel(t)
	var d amqp.Delivery
	taskWaitFor(t, 10*time.Second, "the poison task in "+dead, func() bool {
		var ok bool
		d, ok, err = ch.Get(dead, true)
		if err != nil {
			t.Fatalf("basic.get %s: %v", dead, err)
		}
		return ok
	})
	if string(d.Body) != "poison pill" || d.MessageId != id || d.DeliveryMode != amqp.Persistent {
		t.Errorf("dead letter: got body %q id %q mode %d, want %q %q persistent", d.Body, d.MessageId, d.DeliveryMode, "poison pill", id)
	}
	if got := d.Headers[worker.TaskHeaderAttempt]; got != int32(3) {
		t.Errorf("dead letter %s: got %v (%T), want 3", worker.TaskHeaderAttempt, got, got)
	}
	if got, _ := d.Headers[worker.TaskHeaderError].(string); got != "poison task" {
		t.Errorf("dead letter %s: got %q, want %q", worker.TaskHeaderError, got, "poison task")
	}
	// The healthy task may run before or between the poison's attempts.
	taskWaitFor(t, 10*time.Second, "the healthy task done", func() bool { return l.doneCount() == 1 })
	started, done := l.snapshot()
	tries := 0
	for _, r := range started {
		if r.body == "poison pill" {
			tries++
		}
	}
	if tries != 3 {
		t.Errorf("poison task tried %d times, want 3", tries)
	}
	if len(done) != 1 || done[0].body != "healthy." {
		t.Errorf("got done %+v, want only the healthy task", done)
	}
	if ready, _ := taskQueueDepth(t, ch, names.queue); ready != 0 {
		t.Errorf("got %d ready tasks, want 0 (never redelivered forever)", ready)
	}

	// Events of the poison task: QUEUED, then STARTED/FAILED twice, then
	// STARTED/DEAD_LETTERED.
	want := map[warrenv1.TaskState]int{
		warrenv1.TaskState_TASK_STATE_QUEUED:        1,
		warrenv1.TaskState_TASK_STATE_STARTED:       3,
		warrenv1.TaskState_TASK_STATE_FAILED:        2,
		warrenv1.TaskState_TASK_STATE_DEAD_LETTERED: 1,
	}
	got := map[warrenv1.TaskState]int{}
	total := 7
	for total > 0 {
		resp, err := events.Recv()
		if err != nil {
			t.Fatalf("events: %v (got so far %v)", err, got)
		}
		ev := resp.GetEvent()
		if ev.GetTaskId() != id {
			continue
		}
		got[ev.GetState()]++
		total--
		if ev.GetState() == warrenv1.TaskState_TASK_STATE_DEAD_LETTERED && (ev.GetAttempt() != 3 || ev.GetError() != "poison task" || ev.GetWorkerId() != "A") {
			t.Errorf("got %v, want attempt 3, error and worker A", ev)
		}
	}
	for s, n := range want {
		if got[s] != n {
			t.Errorf("got %d %v events, want %d", got[s], s, n)
		}
	}
}

// TestTaskShutdown: Shutdown lets the current task finish and be
// acknowledged; with a deadline too short it hands the task back.
func TestTaskShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		timeout   time.Duration
		wantErr   error
		wantReady int
	}{
		{name: "finishes the current task", timeout: 5 * time.Second, wantErr: nil, wantReady: 0},
		{name: "requeues an unfinished task", timeout: 50 * time.Millisecond, wantErr: context.DeadlineExceeded, wantReady: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			names := taskNewNames(t)
			client := taskStartGateway(t, names)
			var l taskLog
			w := taskStartWorker(t, names, "A", &l, worker.TaskConfig{Unit: 100 * time.Millisecond})
			ctx := taskTestCtx(t)
			taskSubmit(t, ctx, client, "three units...")
			taskWaitFor(t, 5*time.Second, "task started", func() bool {
				s, _ := l.snapshot()
				return len(s) == 1
			})
			sctx, cancel := context.WithTimeout(ctx, tt.timeout)
			defer cancel()
			if err := w.Shutdown(sctx); !errors.Is(err, tt.wantErr) {
				t.Errorf("Shutdown: got %v, want %v", err, tt.wantErr)
			}
			if got, want := l.doneCount(), 1-tt.wantReady; got != want {
				t.Errorf("got %d tasks done, want %d", got, want)
			}
			ch := brokertest.Channel(t)
			taskWaitFor(t, 5*time.Second, fmt.Sprintf("%d ready", tt.wantReady), func() bool {
				ready, _ := taskQueueDepth(t, ch, names.queue)
				return ready == tt.wantReady
			})
			// Handed back, never dead-lettered because of the shutdown.
			if dead, _ := taskQueueDepth(t, ch, names.queue+worker.TaskDeadLetterSuffix); dead != 0 {
				t.Errorf("got %d dead letters after the shutdown, want 0", dead)
			}
			if tt.wantReady == 1 {
				d, ok, err := ch.Get(names.queue, false)
				if err != nil || !ok || string(d.Body) != "three units..." || !d.Redelivered {
					t.Errorf("requeued task: got %q redelivered %v (ok %v, err %v), want the unfinished task, redelivered", d.Body, d.Redelivered, ok, err)
				}
			}
		})
	}
}

// TestTaskForeignTaskWithoutID: a task published without message_id (as
// new_task.py publishes) gets an id from the worker and is retried and
// dead-lettered under it.
func TestTaskForeignTaskWithoutID(t *testing.T) {
	t.Parallel()
	names := taskNewNames(t)
	var l taskLog
	taskStartWorker(t, names, "A", &l, worker.TaskConfig{Unit: time.Millisecond, MaxAttempts: 2})
	ch := brokertest.Channel(t)
	if err := ch.Publish("", names.queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("poison from afar")}); err != nil {
		t.Fatal(err)
	}
	dead := names.queue + worker.TaskDeadLetterSuffix
	var d amqp.Delivery
	taskWaitFor(t, 10*time.Second, "dead letter", func() bool {
		var ok bool
		var err error
		d, ok, err = ch.Get(dead, true)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if !strings.HasPrefix(d.MessageId, "task-") || d.Headers[worker.TaskHeaderAttempt] != int32(2) {
		t.Errorf("got id %q attempt %v, want a worker-given id and attempt 2", d.MessageId, d.Headers[worker.TaskHeaderAttempt])
	}
}

// TestTaskQuorumDeliveryCount: on a quorum queue the broker counts
// deliveries that were not acknowledged (workers that died, or handed the
// task back); those count as attempts, so a task that kills its workers
// is dead-lettered too instead of being delivered forever.
func TestTaskQuorumDeliveryCount(t *testing.T) {
	t.Parallel()
	names := taskNewNames(t)
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(names.queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("declare quorum queue: %v", err)
	}
	if err := ch.Publish("", names.queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: "crasher", Body: []byte("poison that crashes")}); err != nil {
		t.Fatal(err)
	}
	// Two deliveries handed back unacknowledged, as two dying workers would.
	for i := range 2 {
		var d amqp.Delivery
		taskWaitFor(t, 5*time.Second, "a delivery", func() bool {
			var ok bool
			var err error
			d, ok, err = ch.Get(names.queue, false)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
		if err := d.Nack(false, true); err != nil {
			t.Fatalf("nack %d: %v", i, err)
		}
	}
	var l taskLog
	taskStartWorker(t, names, "A", &l, worker.TaskConfig{Unit: time.Millisecond, MaxAttempts: 3, QueueType: amqpx.QueueQuorum})
	dead := names.queue + worker.TaskDeadLetterSuffix
	var d amqp.Delivery
	taskWaitFor(t, 10*time.Second, "dead letter", func() bool {
		var ok bool
		var err error
		d, ok, err = ch.Get(dead, true)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	started, _ := l.snapshot()
	if len(started) != 1 || d.Headers[worker.TaskHeaderAttempt] != int32(3) {
		t.Errorf("got %d runs and attempt %v, want 1 run as attempt 3 (2 unacknowledged deliveries before it)", len(started), d.Headers[worker.TaskHeaderAttempt])
	}
}
