package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/queuesvc"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// taskTestGateway serves the task and queue services and a tasks worker
// on loopback TCP and returns the address.
func taskTestGateway(t *testing.T) (addr, queue string) {
	t.Helper()
	queue = brokertest.Name(t, "tasks")
	events := brokertest.Name(t, "events")
	// The worker first: it declares the work queue, which the gateway
	// never does.
	warrentest.StartWorkers(t, worker.Config{}, tasksvc.NewWorker(tasksvc.WorkerConfig{
		Queue: queue, EventsExchange: events, WorkerID: "cli-worker", Unit: time.Millisecond,
	}))
	g := warrentest.StartGatewayTCP(t, gateway.Config{},
		tasksvc.New(tasksvc.Config{Queue: queue, EventsExchange: events, ManagementURL: brokertest.ManagementURL()}),
		queuesvc.New(queuesvc.Config{Logger: warrentest.QuietLog}))
	return g.Addr, queue
}

func TestTaskCommands(t *testing.T) {
	addr, queue := taskTestGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// warren task watch --task job-1, in the background.
	wctx, wcancel := context.WithCancel(ctx)
	var watchOut, watchErr lockedBuffer
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- run(wctx, []string{"task", "watch", "--addr", addr, "--task", "job-1"}, &watchOut, &watchErr)
	}()
	waitOutput(t, &watchOut, "Watching tasks")

	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"task", "submit", "Hola...", "--addr", addr, "--key", "job-1"}, &out, &errOut); err != nil {
		t.Fatalf("task submit: %v (stderr %q)", err, errOut.String())
	}
	if got, want := out.String(), " [x] Sent \"Hola...\" (task job-1)\n"; got != want {
		t.Errorf("task submit printed %q, want %q", got, want)
	}
	waitOutput(t, &watchOut, "job-1 SUCCEEDED attempt=1 worker=cli-worker")
	// The gateway publishes QUEUED from a goroutine of its own: it may
	// arrive after the worker's events.
	waitOutput(t, &watchOut, "job-1 QUEUED attempt=1")
	wcancel()
	if err := <-watchDone; err != nil {
		t.Errorf("task watch: %v", err)
	}
	for _, state := range []string{"QUEUED", "STARTED", "SUCCEEDED"} {
		if !regexp.MustCompile(`\d\d:\d\d:\d\d\.\d{3} job-1 ` + state + ` attempt=1`).MatchString(watchOut.String()) {
			t.Errorf("task watch printed %q, want a %s line for job-1", watchOut.String(), state)
		}
	}

	// The management API's unacknowledged count may be a few seconds old.
	want := "name\tmessages_ready\tmessages_unacknowledged\tconsumers\n" + queue + "\t0\t0\t1\n"
	deadline := time.Now().Add(12 * time.Second)
	for {
		out.Reset()
		if err := run(ctx, []string{"task", "stats", "--addr", addr}, &out, &errOut); err != nil {
			t.Fatalf("task stats: %v", err)
		}
		if out.String() == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task stats printed %q, want %q", out.String(), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSendReceiveCommands(t *testing.T) {
	addr, _ := taskTestGateway(t)
	hola := brokertest.Name(t, "hola")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"send", "--addr", addr, "--queue", hola}, &out, &errOut); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got, want := out.String(), " [x] Sent \"¡Hola Mundo!\"\n"; got != want {
		t.Errorf("send printed %q, want %q", got, want)
	}
	rctx, rcancel := context.WithCancel(ctx)
	var recvOut, recvErr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(rctx, []string{"receive", "--addr", addr, "--queue", hola}, &recvOut, &recvErr)
	}()
	waitOutput(t, &recvOut, " [x] Received ¡Hola Mundo!")
	rcancel()
	if err := <-done; err != nil {
		t.Errorf("receive: %v", err)
	}
	if !strings.HasPrefix(recvOut.String(), " [*] Waiting for messages.") {
		t.Errorf("receive printed %q, want the waiting banner first", recvOut.String())
	}
}

func waitOutput(t *testing.T, b *lockedBuffer, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%q in the output", want), func() bool { return strings.Contains(b.String(), want) })
}
