package tasksvc_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
)

// TestTaskRoundRobin is the tutorial's first experiment: two workers with
// no prefetch limit, tasks go to them in turn.
func TestTaskRoundRobin(t *testing.T) {
	t.Parallel()
	names := newNames(t)
	client, _ := startGateway(t, names.config())
	var l taskLog
	startWorker(t, names, "A", &l, tasksvc.WorkerConfig{Prefetch: -1, Unit: time.Millisecond})
	startWorker(t, names, "B", &l, tasksvc.WorkerConfig{Prefetch: -1, Unit: time.Millisecond})
	ctx := testCtx(t)
	const n = 10
	for i := range n {
		submit(t, ctx, client, fmt.Sprintf("task %d.", i))
	}
	warrentest.Eventually(t, 10*time.Second, "10 tasks done", func() bool { return l.doneCount() == n })
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
			names := newNames(t)
			client, _ := startGateway(t, names.config())
			var l taskLog
			const unit = 20 * time.Millisecond
			startWorker(t, names, "A", &l, tasksvc.WorkerConfig{Prefetch: tt.prefetch, Unit: unit})
			startWorker(t, names, "B", &l, tasksvc.WorkerConfig{Prefetch: tt.prefetch, Unit: unit})
			ctx := testCtx(t)
			long := "long" + strings.Repeat(".", 40) // 800ms
			submit(t, ctx, client, long)
			warrentest.Eventually(t, 5*time.Second, "the long task started", func() bool {
				s, _ := l.snapshot()
				return len(s) == 1
			})
			const shorts = 8
			for i := range shorts {
				submit(t, ctx, client, fmt.Sprintf("short %d.", i)) // 20ms
			}
			warrentest.Eventually(t, 10*time.Second, "all tasks done", func() bool { return l.doneCount() == shorts+1 })
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
	names := newNames(t)
	client, _ := startGateway(t, names.config())
	var l taskLog
	startWorker(t, names, "A", &l, tasksvc.WorkerConfig{Unit: time.Millisecond})
	startWorker(t, names, "B", &l, tasksvc.WorkerConfig{Unit: time.Millisecond})
	ctx := testCtx(t)
	const n = 1000
	if err := submitMany(ctx, client, 64, n, "task %d"); err != nil {
		t.Fatal(err)
	}

	warrentest.Eventually(t, 30*time.Second, "1000 tasks done", func() bool { return l.doneCount() >= n })
	ch := brokertest.Channel(t)
	if ready, _ := queueDepth(t, ch, names.queue); ready != 0 {
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

// taskChildWorker starts this test binary as a tasks worker process and
// returns the lines it prints. The process is killed at cleanup.
func childWorker(t testing.TB, n names, unit time.Duration) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", childEnv, n.queue, n.events, unit.Milliseconds()))
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
	names := newNames(t)
	client, _ := startGateway(t, names.config())
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	cmd, lines := childWorker(t, names, 100*time.Millisecond)
	// A -race test binary starting on a loaded machine may take a while.
	warrentest.Eventually(t, 30*time.Second, "child worker consuming", func() bool {
		return consumerCount(t, conn, names.queue) == 1
	})
	ctx := testCtx(t)
	body := "kill me mid-task......" // 600ms in the child
	id := submit(t, ctx, client, body)
	select {
	case line := <-lines:
		if line != "started "+body {
			t.Fatalf("child printed %q, want %q", line, "started "+body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child worker did not start the task within 30s")
	}
	// Now the other worker joins; with prefetch 1 it is idle.
	var l taskLog
	startWorker(t, names, "survivor", &l, tasksvc.WorkerConfig{Unit: time.Millisecond})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 child: %v", err)
	}
	warrentest.Eventually(t, 30*time.Second, "the task completed on the survivor", func() bool { return l.doneCount() == 1 })
	_, done := l.snapshot()
	if done[0].body != body || done[0].worker != "survivor" {
		t.Errorf("got %+v, want %q done by survivor", done[0], body)
	}
	for line := range lines {
		if strings.HasPrefix(line, "done ") {
			t.Errorf("child printed %q after SIGKILL", line)
		}
	}
	if ready, _ := queueDepth(t, ch, names.queue); ready != 0 {
		t.Errorf("got %d ready tasks, want 0", ready)
	}
	t.Logf("task %s: started in the child (pid %d), SIGKILL, completed by the survivor", id, cmd.Process.Pid)
}

// TestTaskThousandWithDeath: 1,000 tasks over a child worker process and
// an in-process one; the child is killed with SIGKILL after 100 tasks.
// Every task runs at least once.
func TestTaskThousandWithDeath(t *testing.T) {
	t.Parallel()
	names := newNames(t)
	client, _ := startGateway(t, names.config())
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	cmd, lines := childWorker(t, names, time.Millisecond)
	var l taskLog
	startWorker(t, names, "survivor", &l, tasksvc.WorkerConfig{Unit: time.Millisecond})
	warrentest.Eventually(t, 30*time.Second, "two consumers", func() bool {
		return consumerCount(t, conn, names.queue) == 2
	})
	ctx := testCtx(t)
	const n = 1000
	submitted := make(chan error, 1)
	go func() { submitted <- submitMany(ctx, client, 64, n, "task %d..") }()
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
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	if !killed {
		t.Fatalf("child finished only %d tasks and was never killed", len(childDone))
	}
	warrentest.Eventually(t, 30*time.Second, "every task done", func() bool {
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
	if ready, _ := queueDepth(t, ch, names.queue); ready != 0 {
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
	names := newNames(t)
	client, _ := startGateway(t, names.config())
	var l taskLog
	startWorker(t, names, "A", &l, tasksvc.WorkerConfig{Unit: time.Millisecond, MaxAttempts: 3})
	ctx := testCtx(t)
	events, err := client.WatchTasks(ctx, &warrenv1.WatchTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Header(); err != nil {
		t.Fatal(err)
	}
	id := submit(t, ctx, client, "poison pill")
	submit(t, ctx, client, "healthy.")

	dead := names.queue + tasksvc.DeadLetterSuffix
	ch := brokertest.Channel(t)
	var d amqp.Delivery
	warrentest.Eventually(t, 10*time.Second, "the poison task in "+dead, func() bool {
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
	if got := d.Headers[tasksvc.HeaderAttempt]; got != int32(3) {
		t.Errorf("dead letter %s: got %v (%T), want 3", tasksvc.HeaderAttempt, got, got)
	}
	if got, _ := d.Headers[tasksvc.HeaderError].(string); got != "poison task" {
		t.Errorf("dead letter %s: got %q, want %q", tasksvc.HeaderError, got, "poison task")
	}
	// The healthy task may run before or between the poison's attempts.
	warrentest.Eventually(t, 10*time.Second, "the healthy task done", func() bool { return l.doneCount() == 1 })
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
	if ready, _ := queueDepth(t, ch, names.queue); ready != 0 {
		t.Errorf("got %d ready tasks, want 0 (never redelivered forever)", ready)
	}

	// Events of the poison task, in lifecycle order: QUEUED, then
	// STARTED/FAILED for attempts 1 and 2, then STARTED/DEAD_LETTERED for
	// attempt 3.
	type step struct {
		state   warrenv1.TaskState
		attempt uint32
	}
	want := []step{
		{warrenv1.TaskState_TASK_STATE_QUEUED, 1},
		{warrenv1.TaskState_TASK_STATE_STARTED, 1}, {warrenv1.TaskState_TASK_STATE_FAILED, 1},
		{warrenv1.TaskState_TASK_STATE_STARTED, 2}, {warrenv1.TaskState_TASK_STATE_FAILED, 2},
		{warrenv1.TaskState_TASK_STATE_STARTED, 3}, {warrenv1.TaskState_TASK_STATE_DEAD_LETTERED, 3},
	}
	var got []step
	for len(got) < len(want) {
		resp, err := events.Recv()
		if err != nil {
			t.Fatalf("events: %v (got so far %v)", err, got)
		}
		ev := resp.GetEvent()
		if ev.GetTaskId() != id {
			continue
		}
		got = append(got, step{ev.GetState(), ev.GetAttempt()})
		if ev.GetState() == warrenv1.TaskState_TASK_STATE_DEAD_LETTERED && (ev.GetError() != "poison task" || ev.GetWorkerId() != "A") {
			t.Errorf("got %v, want error %q and worker A", ev, "poison task")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got events %v, want %v", got, want)
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
			names := newNames(t)
			client, _ := startGateway(t, names.config())
			var l taskLog
			w := startWorker(t, names, "A", &l, tasksvc.WorkerConfig{Unit: 100 * time.Millisecond})
			ctx := testCtx(t)
			submit(t, ctx, client, "three units...")
			warrentest.Eventually(t, 5*time.Second, "task started", func() bool {
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
			warrentest.Eventually(t, 5*time.Second, fmt.Sprintf("%d ready", tt.wantReady), func() bool {
				ready, _ := queueDepth(t, ch, names.queue)
				return ready == tt.wantReady
			})
			// Handed back, never dead-lettered because of the shutdown.
			if dead, _ := queueDepth(t, ch, names.queue+tasksvc.DeadLetterSuffix); dead != 0 {
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
	names := newNames(t)
	var l taskLog
	startWorker(t, names, "A", &l, tasksvc.WorkerConfig{Unit: time.Millisecond, MaxAttempts: 2})
	ch := brokertest.Channel(t)
	if err := ch.Publish("", names.queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("poison from afar")}); err != nil {
		t.Fatal(err)
	}
	dead := names.queue + tasksvc.DeadLetterSuffix
	var d amqp.Delivery
	warrentest.Eventually(t, 10*time.Second, "dead letter", func() bool {
		var ok bool
		var err error
		d, ok, err = ch.Get(dead, true)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if !strings.HasPrefix(d.MessageId, "task-") || d.Headers[tasksvc.HeaderAttempt] != int32(2) {
		t.Errorf("got id %q attempt %v, want a worker-given id and attempt 2", d.MessageId, d.Headers[tasksvc.HeaderAttempt])
	}
}

// TestTaskQuorumDeliveryCount: on a quorum queue the broker counts
// deliveries that were not acknowledged (workers that died, or handed the
// task back); those count as attempts, so a task that kills its workers
// is dead-lettered too instead of being delivered forever, and the task's
// events say how many there were (delivery_count).
func TestTaskQuorumDeliveryCount(t *testing.T) {
	t.Parallel()
	names := newNames(t)
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(names.queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("declare quorum queue: %v", err)
	}
	// The task's events, in a queue of the test's own.
	if err := ch.ExchangeDeclare(names.events, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	evq, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(evq.Name, "crasher", names.events, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", names.queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: "crasher", Body: []byte("poison that crashes")}); err != nil {
		t.Fatal(err)
	}
	// Two deliveries handed back unacknowledged, as two dying workers would.
	for i := range 2 {
		var d amqp.Delivery
		warrentest.Eventually(t, 5*time.Second, "a delivery", func() bool {
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
	startWorker(t, names, "A", &l, tasksvc.WorkerConfig{Unit: time.Millisecond, MaxAttempts: 3, QueueType: core.QueueQuorum})
	dead := names.queue + tasksvc.DeadLetterSuffix
	var d amqp.Delivery
	warrentest.Eventually(t, 10*time.Second, "dead letter", func() bool {
		var ok bool
		var err error
		d, ok, err = ch.Get(dead, true)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	started, _ := l.snapshot()
	if len(started) != 1 || d.Headers[tasksvc.HeaderAttempt] != int32(3) {
		t.Errorf("got %d runs and attempt %v, want 1 run as attempt 3 (2 unacknowledged deliveries before it)", len(started), d.Headers[tasksvc.HeaderAttempt])
	}
	// STARTED and DEAD_LETTERED, both of attempt 3 after 2 deliveries.
	for _, want := range []warrenv1.TaskState{warrenv1.TaskState_TASK_STATE_STARTED, warrenv1.TaskState_TASK_STATE_DEAD_LETTERED} {
		var ev warrenv1.TaskEvent
		warrentest.Eventually(t, 5*time.Second, "an event", func() bool {
			d, ok, err := ch.Get(evq.Name, true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if err := protojson.Unmarshal(d.Body, &ev); err != nil {
					t.Fatalf("event %q: %v", d.Body, err)
				}
			}
			return ok
		})
		if ev.GetState() != want || ev.GetAttempt() != 3 || ev.GetDeliveryCount() != 2 {
			t.Errorf("event %v attempt %d delivery_count %d, want %v attempt 3 delivery_count 2", ev.GetState(), ev.GetAttempt(), ev.GetDeliveryCount(), want)
		}
	}
}

// TestTaskWorkerQueueTypes: the worker declares the work queue and its
// dead-letter queue durable, as quorum queues by default (today's
// tutorials) and as classic ones with core.QueueClassic (the older
// tutorials).
func TestTaskWorkerQueueTypes(t *testing.T) {
	t.Parallel()
	for _, typ := range []core.QueueType{"", core.QueueQuorum, core.QueueClassic} {
		t.Run("type "+string(typ), func(t *testing.T) {
			t.Parallel()
			n := newNames(t)
			var l taskLog
			startWorker(t, n, "A", &l, tasksvc.WorkerConfig{QueueType: typ})
			for _, q := range []string{n.queue, n.dead()} {
				if typ == core.QueueClassic {
					brokertest.WantClassic(t, q, true)
				} else {
					brokertest.WantQuorum(t, q)
				}
			}
		})
	}
}
