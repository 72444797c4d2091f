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

	"go.uber.org/goleak"

	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

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
// prints exactly the warning and error messages, one line each.
func TestLogTailDirect(t *testing.T) {
	addr, _ := startGateway(t)
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	tailDone := make(chan error, 1)
	go func() {
		err := logCommand(ctx, []string{"tail", "--addr", addr, "--exchange", "direct", "warning", "error"}, outW, errW)
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
	waiting, err := bufio.NewReader(errR).ReadString('\n')
	if err != nil || !strings.Contains(waiting, "Waiting for logs") {
		t.Fatalf("tail stderr: got %q, %v, want the Waiting line", waiting, err)
	}

	for _, e := range []struct {
		args []string
		want string
	}{
		{[]string{"--exchange", "direct", "--routing-key", "error", "Run.", "Run.", "Or it will explode."}, " [x] Sent error:Run. Run. Or it will explode.\n"},
		{[]string{"--exchange", "direct"}, " [x] Sent info:Hello World!\n"},
		{[]string{"--exchange", "direct", "--routing-key", "warning", "disk 91% full"}, " [x] Sent warning:disk 91% full\n"},
		{[]string{"--exchange", "fanout"}, " [x] Sent info: Hello World!\n"},
	} {
		var out, errOut strings.Builder
		if err := logCommand(context.Background(), append([]string{"emit", "--addr", addr}, e.args...), &out, &errOut); err != nil {
			t.Fatalf("emit %q: %v; stderr %q", e.args, err, errOut.String())
		}
		if out.String() != e.want {
			t.Errorf("emit %q printed %q, want %q", e.args, out.String(), e.want)
		}
	}
	lines := bufio.NewScanner(outR)
	for _, want := range []string{"[error] Run. Run. Or it will explode.", "[warning] disk 91% full"} {
		if !lines.Scan() {
			t.Fatalf("tail ended early: %v", lines.Err())
		}
		if got := lines.Text(); got != want {
			t.Errorf("tail line: got %q, want %q", got, want)
		}
	}
}

func TestLogCommandUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "emit or tail"},
		{"unknown subcommand", []string{"grep"}, "unknown command"},
		{"bad exchange", []string{"emit", "--exchange", "headers"}, "want fanout, direct or topic"},
		{"direct tail needs keys", []string{"tail", "--exchange", "direct"}, "at least one binding key"},
		{"topic tail needs keys", []string{"tail", "--exchange", "topic"}, "at least one binding key"},
		{"bad flag", []string{"tail", "--nope"}, "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut strings.Builder
			err := logCommand(context.Background(), tc.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
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
	err = logCommand(ctx, []string{"tail", "--addr", addr}, io.Discard, io.Discard)
	if err == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("got %v (ctx %v), want an UNAVAILABLE error before the deadline", err, ctx.Err())
	}
}
