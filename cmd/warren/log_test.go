package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
)

// startGateway serves a logsvc.Service with exchanges of the test's own on
// a TCP port and returns its address and config.
func startGateway(t *testing.T) (string, logsvc.Config) {
	t.Helper()
	cfg := logsvc.Config{
		FanoutExchange: brokertest.Name(t, "logs"),
		DirectExchange: brokertest.Name(t, "direct_logs"),
		TopicExchange:  brokertest.Name(t, "topic_logs"),
	}
	g := warrentest.StartGatewayTCP(t, gateway.Config{}, logsvc.New(cfg))
	return g.Addr, cfg
}

// TestLogTailDirect is the Routing tutorial's session:
// warren log tail --exchange direct warning error > logs_from_rabbit.log
// prints exactly the warning and error messages, one line each; what is
// emitted as soon as tail said it subscribed reaches it.
func TestLogTailDirect(t *testing.T) {
	addr, _ := startGateway(t)
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	tailDone := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"log", "tail", "--exchange", "direct", "warning", "error", "--addr", addr}, outW, errW)
		_ = outW.Close()
		_ = errW.Close()
		tailDone <- err
	}()
	t.Cleanup(func() {
		cancel()
		go func() { _, _ = io.Copy(io.Discard, errR) }()
		go func() { _, _ = io.Copy(io.Discard, outR) }()
		if err := <-tailDone; err != nil {
			t.Errorf("tail after Ctrl-C: got %v, want nil", err)
		}
	})
	stderr := bufio.NewReader(errR)
	for _, want := range []string{
		"warren: log tail: subscribed to the direct exchange with binding keys warning, error\n",
		" [*] Waiting for logs. To exit press CTRL+C\n",
	} {
		if line, err := stderr.ReadString('\n'); line != want {
			t.Fatalf("tail stderr: got %q, %v, want %q", line, err, want)
		}
	}

	for _, e := range []struct {
		args []string
		want string
	}{
		{[]string{"--exchange", "direct", "--routing-key", "error", "Run.", "Run.", "Or it will explode."}, " [x] Sent error:Run. Run. Or it will explode.\n"},
		{[]string{"Run.", "--exchange", "direct", "--routing-key", "error", "Run", "again."}, " [x] Sent error:Run. Run again.\n"},
		{[]string{"--exchange", "direct"}, " [x] Sent info:Hello World!\n"},
		{[]string{"--exchange", "direct", "--routing-key", "warning", "disk 91% full"}, " [x] Sent warning:disk 91% full\n"},
		{[]string{"--exchange", "fanout"}, " [x] Sent info: Hello World!\n"},
	} {
		var out, errOut strings.Builder
		if err := run(context.Background(), append([]string{"log", "emit", "--addr", addr}, e.args...), &out, &errOut); err != nil {
			t.Fatalf("emit %q: %v; stderr %q", e.args, err, errOut.String())
		}
		if out.String() != e.want {
			t.Errorf("emit %q printed %q, want %q", e.args, out.String(), e.want)
		}
	}
	lines := bufio.NewScanner(outR)
	for _, want := range []string{"[error] Run. Run. Or it will explode.", "[error] Run. Run again.", "[warning] disk 91% full"} {
		if !lines.Scan() {
			t.Fatalf("tail ended early: %v", lines.Err())
		}
		if got := lines.Text(); got != want {
			t.Errorf("tail line: got %q, want %q", got, want)
		}
	}
}

// TestLogTailUnreachable: a tail with no gateway fails rather than hangs.
func TestLogTailUnreachable(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = run(ctx, []string{"log", "tail", "--addr", addr}, io.Discard, io.Discard)
	if err == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("got %v (ctx %v), want an UNAVAILABLE error before the deadline", err, ctx.Err())
	}
}
