package fibsvc_test

import (
	"bufio"
	"context"
	"testing"
	"time"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/pytest"
)

// TestInteropPikaServerServesGateway runs the tutorial's rpc_server.py
// (pika), which declares the RPC queue itself, behind warren's gateway.
func TestInteropPikaServerServesGateway(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := pytest.Command(ctx, t, "testdata/rpc_server.py", brokertest.Require(t), queue)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rpc_server.py: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("rpc_server.py did not start: %q %v", lines.Text(), lines.Err())
	}

	gw := startRPCGateway(t, gwConfig{RPCQueue: queue})
	for n, want := range map[uint32]string{4: "3", 30: "832040", 94: "19740274219868223167"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: n})
		cancel()
		if err != nil {
			t.Fatalf("Fibonacci(%d) via rpc_server.py: %v", n, err)
		}
		if resp.GetValue() != want {
			t.Errorf("Fibonacci(%d) via rpc_server.py = %s, want %s", n, resp.GetValue(), want)
		}
		if !lines.Scan() {
			t.Fatalf("rpc_server.py said nothing for fib(%d)", n)
		}
	}
}
