package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// jsonLog collects the lines of a JSON slog handler.
type jsonLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *jsonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// calls returns the access-log lines ("msg":"call") of method, with one of
// codes when any are given.
func (l *jsonLog) calls(t testing.TB, method string, want ...codes.Code) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "call" && m["method"] == method && (len(want) == 0 || slices.ContainsFunc(want, func(c codes.Code) bool { return m["code"] == c.String() })) {
			out = append(out, m)
		}
	}
	return out
}

// waitCall waits for the one access-log line of method (with one of codes)
// and returns it.
func (l *jsonLog) waitCall(t testing.TB, method string, want ...codes.Code) map[string]any {
	t.Helper()
	waitFor(t, "access-log line of "+method, func() bool { return len(l.calls(t, method, want...)) > 0 })
	lines := l.calls(t, method, want...)
	if len(lines) != 1 {
		t.Fatalf("%d access-log lines of %s, want 1: %v", len(lines), method, lines)
	}
	return lines[0]
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	cfg := gwConfig{}.names(t)
	var log jsonLog
	var principalCalls sync.Map
	g := warrentest.StartGateway(t, gateway.Config{
		AccessLog: slog.New(slog.NewJSONHandler(&log, nil)),
		Principal: func(ctx context.Context) string {
			md, _ := metadata.FromIncomingContext(ctx)
			if who := md.Get("x-test-user"); len(who) > 0 {
				principalCalls.Store(who[0], true)
				return who[0]
			}
			return ""
		},
	}, cfg.services()...)
	warrentest.StartWorkers(t, worker.Config{},
		fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: cfg.RPCQueue, Logger: quietLog}),
		tasksvc.NewWorker(tasksvc.WorkerConfig{Queue: cfg.Tasks, EventsExchange: cfg.Events, Logger: quietLog}))
	ctx := metadata.AppendToOutgoingContext(warrentest.Ctx(t), "x-test-user", "alice")
	fib := warrenv1.NewFibonacciServiceClient(g.Conn)
	tasks := warrenv1.NewTaskServiceClient(g.Conn)

	waitFor(t, "Fibonacci answered", func() bool {
		_, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 10})
		return err == nil
	})
	t.Run("unary OK with its correlation id", func(t *testing.T) {
		lines := log.calls(t, "/warren.v1.FibonacciService/Fibonacci")
		line := lines[len(lines)-1]
		if line["code"] != "OK" || line["principal"] != "alice" || line["error"] != nil {
			t.Errorf("line %v: want code OK, principal alice, no error", line)
		}
		if id, _ := line["correlation_id"].(string); id == "" {
			t.Errorf("line %v: no correlation_id", line)
		}
		if p, _ := line["peer"].(string); p == "" {
			t.Errorf("line %v: no peer", line)
		}
		if d, isNum := line["duration"].(float64); !isNum || d <= 0 {
			t.Errorf("line %v: duration %v, want > 0 (nanoseconds)", line, line["duration"])
		}
	})
	t.Run("the status the caller got", func(t *testing.T) {
		_, err := fib.Fibonacci(warrentest.Ctx(t), &warrenv1.FibonacciRequest{N: 100001})
		wantCode(t, err, codes.InvalidArgument)
		line := log.waitCall(t, "/warren.v1.FibonacciService/Fibonacci", codes.InvalidArgument)
		if line["error"] == "" || line["error"] == nil {
			t.Errorf("line %v: want code InvalidArgument and the status message", line)
		}
		if _, ok := line["principal"]; ok {
			t.Errorf("line %v: a principal for a call that named none", line)
		}
	})
	t.Run("task id", func(t *testing.T) {
		resp, err := tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x"})
		if err != nil {
			t.Fatal(err)
		}
		line := log.waitCall(t, "/warren.v1.TaskService/SubmitTask")
		if line["task_id"] != resp.GetTaskId() || line["code"] != "OK" {
			t.Errorf("line %v: want code OK and task_id %s", line, resp.GetTaskId())
		}
		if _, ok := line["correlation_id"]; ok {
			t.Errorf("line %v: a correlation id for a task", line)
		}
	})
	t.Run("stream", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		stream, err := tasks.WatchTasks(sctx, &warrenv1.WatchTasksRequest{TaskId: "watched-task"})
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := stream.Recv(); err != nil {
				break
			}
		}
		line := log.waitCall(t, "/warren.v1.TaskService/WatchTasks")
		if line["task_id"] != "watched-task" {
			t.Errorf("line %v: want task_id watched-task", line)
		}
		if c := line["code"]; c != "DeadlineExceeded" && c != "Canceled" {
			t.Errorf("line %v: code %v, want the client's end: DeadlineExceeded or Canceled", line, c)
		}
	})
	t.Run("health at debug level", func(t *testing.T) {
		if _, err := healthpb.NewHealthClient(g.Conn).Check(warrentest.Ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		// Another logged call after it: its line is written once the
		// health check's would have been.
		_, err := fib.Fibonacci(warrentest.Ctx(t), &warrenv1.FibonacciRequest{N: 100002})
		wantCode(t, err, codes.InvalidArgument)
		waitFor(t, "second InvalidArgument line", func() bool {
			return len(log.calls(t, "/warren.v1.FibonacciService/Fibonacci", codes.InvalidArgument)) == 2
		})
		if lines := log.calls(t, "/grpc.health.v1.Health/Check"); len(lines) != 0 {
			t.Errorf("health check logged at info level: %v", lines)
		}
	})
	if _, ok := principalCalls.Load("alice"); !ok {
		t.Error("Principal never found alice")
	}
}

func TestNoAccessLogByDefault(t *testing.T) {
	t.Parallel()
	cfg := gwConfig{}.names(t)
	var log jsonLog
	g := warrentest.StartGateway(t, gateway.Config{Logger: slog.New(slog.NewJSONHandler(&log, nil))}, cfg.services()...)
	_, err := warrenv1.NewFibonacciServiceClient(g.Conn).Fibonacci(warrentest.Ctx(t), &warrenv1.FibonacciRequest{N: 1})
	wantCode(t, err, codes.Unavailable) // no worker
	g.Stop()
	if lines := log.calls(t, "/warren.v1.FibonacciService/Fibonacci"); len(lines) != 0 {
		t.Errorf("access-log lines without Config.AccessLog: %v", lines)
	}
	if !strings.Contains(log.String(), `"msg":"gateway: drained"`) {
		t.Errorf("no drain line in the gateway's log:\n%s", log.String())
	}
}
