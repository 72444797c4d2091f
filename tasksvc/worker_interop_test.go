package tasksvc_test

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/pytest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
)

// pythonCmd runs a testdata script under the interpreter with pika.
func pythonCmd(t testing.TB, script string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(pytest.Python, append([]string{"testdata/" + script}, args...)...)
	cmd.Env = append(os.Environ(), "AMQP_URL="+brokertest.Require(t), "PYTHONUNBUFFERED=1")
	return cmd
}

// TestTaskInteropPikaNewTask: the tutorial's new_task.py publishes, warren's
// worker does the work.
func TestTaskInteropPikaNewTask(t *testing.T) {
	t.Parallel()
	pytest.Require(t)
	n := newNames(t)
	var l taskLog
	// The seed's new_task.py declares a durable classic queue.
	startWorker(t, n, "warren", &l, tasksvc.WorkerConfig{Unit: 10 * time.Millisecond, QueueType: core.QueueClassic})
	for _, msg := range []string{"Primer mensaje.", "Segundo mensaje.."} {
		out, err := pythonCmd(t, "new_task.py", n.queue, msg).CombinedOutput()
		if err != nil {
			t.Fatalf("new_task.py: %v\n%s", err, out)
		}
		if got, want := strings.TrimSpace(string(out)), " [x] Sent "+msg; got != strings.TrimSpace(want) {
			t.Errorf("new_task.py printed %q, want %q", got, want)
		}
	}
	warrentest.Eventually(t, 10*time.Second, "both tasks done by warren's worker", func() bool { return l.doneCount() == 2 })
	_, done := l.snapshot()
	if done[0].body != "Primer mensaje." || done[1].body != "Segundo mensaje.." {
		t.Errorf("got %+v, want the two messages in order", done)
	}
}

// TestTaskInteropPikaWorker: warren's SubmitTask publishes, the tutorial's
// worker.py (prefetch 1, ack after the work) does the work.
func TestTaskInteropPikaWorker(t *testing.T) {
	t.Parallel()
	pytest.Require(t)
	n := newNames(t)
	client, _ := startGateway(t, n.config())
	cmd := pythonCmd(t, "worker.py", n.queue)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker.py: %v", err)
	}
	lines := make(chan string, 64)
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
	next := func() string {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("worker.py exited")
			}
			return line
		case <-time.After(15 * time.Second):
			t.Fatal("worker.py printed nothing for 15s")
		}
		return ""
	}
	if got := next(); !strings.Contains(got, "Waiting for messages") {
		t.Fatalf("worker.py printed %q, want the waiting banner", got)
	}
	ctx := testCtx(t)
	ids := []string{submit(t, ctx, client, "Hola"), submit(t, ctx, client, "Hola.")}
	for i, body := range []string{"Hola", "Hola."} {
		want := " [x] Received " + body + " id=" + ids[i]
		if got := next(); got != want {
			t.Errorf("worker.py printed %q, want %q", got, want)
		}
		if got := next(); got != " [x] Done" {
			t.Errorf("worker.py printed %q, want %q", got, " [x] Done")
		}
	}
	ch := brokertest.Channel(t)
	if ready, consumers := queueDepth(t, ch, n.queue); ready != 0 || consumers != 1 {
		t.Errorf("got ready=%d consumers=%d, want 0 and 1 (worker.py)", ready, consumers)
	}
}
