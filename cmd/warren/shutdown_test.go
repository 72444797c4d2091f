package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// TestShutdownLogsAndSecondSignal runs the binary, with JSON logs, holds
// a task in its worker, and stops it: the first SIGTERM is logged and
// starts a drain that logs what it waits for (the worker's task); the
// second ends the process at once with 128+SIGTERM.
func TestShutdownLogsAndSecondSignal(t *testing.T) {
	t.Parallel()
	brokertest.Require(t)
	ents := newEntities(t)
	addr := freeAddr(t)
	p := startProc(t, nil, append([]string{"dev", "--listen", addr, "--log-format", "json",
		"--task-unit", "1s", "--worker-drain-timeout", "60s"}, ents.flags()...)...)
	waitServing(t, addr)
	// Thirty units of work: the worker holds the task through the test.
	// A Fibonacci answer proves the RPC client set up, not yet the task
	// publisher: retry.
	submit := func() bool {
		_, err := call("task", "submit", "--addr", addr, strings.Repeat(".", 30))
		return err == nil
	}
	waitFor(t, "task submitted", submit)
	// The queue is empty once the worker took the task.
	ch := brokertest.Channel(t)
	waitFor(t, "the worker to take the task", func() bool {
		q, err := ch.QueueDeclarePassive(ents.taskQueue, false, false, false, false, nil)
		return err == nil && q.Messages == 0
	})

	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, 1, `"msg":"signal received; shutting down`, `"signal":"terminated"`)
	p.waitLog(t, 1, `"msg":"gateway: drained"`)
	p.waitLog(t, 1, `"msg":"worker: draining"`, `"workers":2`)
	p.waitLog(t, 1, `"msg":"worker: waiting for workers to finish their deliveries"`)
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d after a second SIGTERM, want %d", code, 128+int(syscall.SIGTERM))
	}
	stderr := p.stderr.String()
	if countLines(stderr, `"level":"ERROR"`, `"msg":"second signal; exiting without waiting for the drain"`) != 1 {
		t.Errorf("no line about the second signal in:\n%s", stderr)
	}
	if countLines(stderr, `"msg":"worker: drained"`) != 0 {
		t.Errorf("the worker's drain ended, want the process gone first:\n%s", stderr)
	}
	// --log-format json: every line is a JSON object.
	for line := range strings.SplitSeq(strings.TrimSpace(stderr), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %q", line)
		}
	}
}

// TestShutdownLogsTheDrain stops the binary once: the signal, the
// gateway's drain, the workers' and the end are logged, and it exits 0.
func TestShutdownLogsTheDrain(t *testing.T) {
	t.Parallel()
	brokertest.Require(t)
	addr := freeAddr(t)
	p := startProc(t, nil, append([]string{"dev", "--listen", addr}, newEntities(t).flags()...)...)
	waitServing(t, addr)
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGINT, want 0; stderr:\n%s", code, p.stderr.String())
	}
	stderr := p.stderr.String()
	// In this order.
	want := []string{
		`msg="signal received; shutting down (a second one exits at once)" signal=interrupt`,
		`msg="gateway: draining" calls=0 streams=0 timeout=10s`,
		`msg="gateway: drained"`,
		`msg="gateway: broker connection closed"`,
		`msg="gateway stopped"`,
		`msg="worker: draining" workers=2`,
		`msg="worker: drained"`,
		`msg="worker: broker connection closed"`,
	}
	at := 0
	for _, w := range want {
		i := strings.Index(stderr[at:], w)
		if i < 0 {
			t.Fatalf("no %q after byte %d of stderr:\n%s", w, at, stderr)
		}
		at += i + len(w)
	}
}
