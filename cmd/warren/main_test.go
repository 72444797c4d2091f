package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenrpc/warren/internal/brokertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binDir != "" {
			_ = os.RemoveAll(binDir)
		}
		os.Exit(code)
	}))
}

var (
	buildOnce sync.Once
	binDir    string // holds the warren binary the tests built
	binErr    error
)

// binary builds warren once for the tests that run it as a process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "warren-test-"); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "warren"), ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "warren")
}

// waitFor polls cond until it holds, or fails the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a command writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

// runInBackground runs a warren command in this process until the test ends.
func runInBackground(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var stderr bytes.Buffer
	wg.Go(func() {
		if err := run(ctx, args, &bytes.Buffer{}, &stderr); err != nil {
			t.Errorf("warren %s: %v", strings.Join(args, " "), err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// entities names every broker entity a warren server declares, so that a
// test shares none with another or with the tutorials; each is deleted when
// the test ends.
type entities struct {
	rpcQueue, taskQueue, events, logs, directLogs, topicLogs string
}

func newEntities(t *testing.T) entities {
	return entities{
		rpcQueue:   brokertest.Name(t, "rpc"),
		taskQueue:  brokertest.Name(t, "tasks"),
		events:     brokertest.Name(t, "events"),
		logs:       brokertest.Name(t, "logs"),
		directLogs: brokertest.Name(t, "direct_logs"),
		topicLogs:  brokertest.Name(t, "topic_logs"),
	}
}

// flags are the command-line flags that name the entities.
func (e entities) flags() []string {
	return []string{
		"--rpc-queue", e.rpcQueue,
		"--task-queue", e.taskQueue,
		"--events-exchange", e.events,
		"--logs-exchange", e.logs,
		"--direct-logs-exchange", e.directLogs,
		"--topic-logs-exchange", e.topicLogs,
	}
}

// call runs a client command and returns its stdout and error.
func call(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), err
}

// waitServing retries fib until the gateway answers, or fails the test.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := call("fib", "--addr", addr, "--timeout", "2s", "1")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("warren dev at %s never answered: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDevServesFib(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	addr := freeAddr(t)
	ents := newEntities(t)
	runInBackground(t, append([]string{"dev", "--listen", addr, "--amqp-url", url, "--log-level", "error"}, ents.flags()...)...)
	waitServing(t, addr)
	// The gateway and the workers declare the exchanges the flags name. A
	// Fibonacci answer proves only that the Components before the RPC
	// client are set up, so the others may still be declaring: wait.
	conn := brokertest.Dial(t)
	for _, ex := range []struct{ name, kind string }{
		{ents.events, "topic"}, {ents.logs, "fanout"}, {ents.directLogs, "direct"}, {ents.topicLogs, "topic"},
	} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ch, err := conn.Channel()
			if err == nil {
				err = ch.ExchangeDeclarePassive(ex.name, ex.kind, false, false, false, false, nil)
				_ = ch.Close()
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("exchange %q (%s) not declared: %v", ex.name, ex.kind, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// --queue-type defaults to quorum: the workers' queues are durable
	// quorum queues, which the broker's equivalence check of a declare
	// with those properties proves (a classic queue fails it with 406).
	for _, q := range []string{ents.rpcQueue, ents.taskQueue} {
		declare := func(passive bool) error {
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			if passive {
				_, err = ch.QueueDeclarePassive(q, false, false, false, false, nil)
			} else {
				_, err = ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
			}
			return err
		}
		waitFor(t, "queue "+q, func() bool { return declare(true) == nil })
		if err := declare(false); err != nil {
			t.Errorf("queue %q is not a durable quorum queue: %v", q, err)
		}
	}

	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"fib 30", []string{"30"}, "832040\n", ""},
		{"fib 1000 has 209 digits", []string{"1000"}, "43466557686937456435688527675040625802564660517371780402481729089536555417949051890403879840079255169295922593080322634775209689623239873322471161642996440906533187938298969649928516003704476137795166849228875\n", ""},
		{"too large", []string{"100001"}, "", "InvalidArgument"},
		{"not a number", []string{"abc"}, "", "non-negative integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := call(append([]string{"fib", "--addr", addr}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("warren fib %v: error %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("warren fib %v = %q, %v; want %q", tt.args, got, err, tt.want)
			}
		})
	}
}

func TestGatewayWithoutWorkerIsUnavailableAtOnce(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	addr := freeAddr(t)
	ents := newEntities(t)
	runInBackground(t, append([]string{"gateway", "--listen", addr, "--amqp-url", url, "--log-level", "error"}, ents.flags()...)...)
	deadline := time.Now().Add(15 * time.Second)
	for {
		start := time.Now()
		_, err := call("fib", "--addr", addr, "30")
		elapsed := time.Since(start)
		if err != nil && strings.Contains(err.Error(), "Unavailable: core: queue does not exist") {
			if elapsed > 500*time.Millisecond {
				t.Errorf("UNAVAILABLE after %v, want well under a second", elapsed)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("warren fib with no worker: %v, want Unavailable from the gateway", err)
		}
		time.Sleep(20 * time.Millisecond) // the gateway is still starting
	}
}

// TestSIGTERMStopsDevCleanly runs the real binary and stops it as a
// process manager would.
func TestSIGTERMStopsDevCleanly(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	bin := binary(t)
	addr := freeAddr(t)
	cmd := exec.Command(bin, append([]string{"dev", "--listen", addr, "--amqp-url", url}, newEntities(t).flags()...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitServing(t, addr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("warren dev exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("warren dev did not stop within 15s of SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "gateway stopped") {
		t.Errorf("no clean-stop log line in:\n%s", stderr.String())
	}
}

// TestExitStatus runs the binary: help exits 0 on stdout, a usage error 2,
// a failed call 1.
func TestExitStatus(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	tests := []struct {
		args   []string
		code   int
		stdout string // a part of it
		stderr string // a part of it
	}{
		{[]string{"fib", "--help"}, 0, "Usage:\n  warren fib N [flags]", ""},
		{[]string{"help", "fib"}, 0, "Usage:\n  warren fib N [flags]", ""},
		{[]string{"version"}, 0, "warren version ", ""},
		{[]string{"fib"}, 2, "", "warren: fib: want 1 argument (N), got 0\n"},
		{[]string{"fib", "30", "--adr", "x"}, 2, "", "did you mean --addr?"},
		{[]string{"fib", "30", "--addr", freeAddr(t), "--timeout", "5s"}, 1, "", "warren: fib: Unavailable: "},
	}
	for _, tt := range tests {
		cmd := exec.Command(bin, tt.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("warren %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tt.args, code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}

// TestLogHistoryThroughTheCLI: warren dev --log-history keeps what log
// emit sends; log tail --from first --offsets prints it with its offsets,
// --from an offset starts there, and an offset past the end fails with
// OutOfRange.
func TestLogHistoryThroughTheCLI(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	addr := freeAddr(t)
	ents := newEntities(t)
	runInBackground(t, append([]string{"dev", "--log-history", "--listen", addr, "--amqp-url", url, "--log-level", "error"}, ents.flags()...)...)
	waitServing(t, addr)
	// No wait for the history: LogService binds its streams before its
	// emits can publish, so the first emit that succeeds is kept.
	for _, body := range []string{"one", "two", "three"} {
		waitFor(t, "log emit "+body, func() bool {
			_, err := call("log", "emit", "--addr", addr, "--exchange", "topic", "--routing-key", "kern.info", body)
			return err == nil
		})
	}
	tail := func(from string, lines int) []string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var stdout lockedBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"log", "tail", "--addr", addr, "--exchange", "topic", "--from", from, "--offsets", "#"}, &stdout, &lockedBuffer{})
		}()
		waitFor(t, fmt.Sprintf("%d lines from %s", lines, from), func() bool { return strings.Count(stdout.String(), "\n") >= lines })
		cancel()
		if err := <-done; err != nil {
			t.Errorf("log tail --from %s: %v", from, err)
		}
		return strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	}
	all := tail("first", 3)
	var offsets []int64
	for i, want := range []string{"one", "two", "three"} {
		var off int64
		var key, body string
		if _, err := fmt.Sscanf(all[i], "%d %s %s", &off, &key, &body); err != nil || key != "[kern.info]" || body != want {
			t.Fatalf("line %d %q: want \"OFFSET [kern.info] %s\" (%v)", i, all[i], want, err)
		}
		offsets = append(offsets, off)
	}
	if got := tail(fmt.Sprint(offsets[1]), 2); got[0] != all[1] || got[1] != all[2] {
		t.Errorf("--from %d printed %q, want %q", offsets[1], got, all[1:])
	}
	_, err := call("log", "tail", "--addr", addr, "--exchange", "topic", "--from", fmt.Sprint(offsets[2]+10), "#")
	if err == nil || !strings.Contains(err.Error(), "OutOfRange") || !strings.Contains(err.Error(), "past the end of the history") {
		t.Errorf("--from past the end: %v, want OutOfRange", err)
	}
}
