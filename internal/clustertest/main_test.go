package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
)

// childGateway, when set in the environment, makes the test binary a
// gateway process (see gatewayProcess) instead of running the tests.
const childGateway = "WARREN_CLUSTERTEST_GATEWAY"

func TestMain(m *testing.M) {
	if os.Getenv(childGateway) != "" {
		os.Exit(runChildGateway())
	}
	os.Exit(m.Run())
}

// runChildGateway serves a gateway (Fibonacci and Tasks) on a free
// loopback port, prints "listening HOST:PORT", and serves until SIGTERM
// or until its parent kills it.
func runChildGateway() int {
	env := func(k string) string { return os.Getenv("WARREN_CLUSTERTEST_" + k) }
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := gateway.New(gateway.Config{
		AMQP:   core.Config{URLs: []string{env("AMQP_URL")}, Name: "warren-clustertest-child-gateway"},
		Logger: warrentest.QuietLog,
	}, []gateway.Service{
		fibsvc.New(fibsvc.Config{Queue: env("RPC_QUEUE")}),
		tasksvc.New(tasksvc.Config{Queue: env("TASK_QUEUE"), EventsExchange: env("EVENTS"), Logger: warrentest.QuietLog}),
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		for !srv.Connected() {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("listening", lis.Addr())
	}()
	if err := srv.Serve(ctx, lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// gatewayProcess is a gateway in a process of its own, which a test can
// kill with SIGKILL.
type gatewayProcess struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// startGatewayProcess runs the test binary as a gateway on the broker at
// url, with the given entity names, and waits until it is connected and
// listening. Cleanup kills it.
func startGatewayProcess(t testing.TB, url, rpcQueue, taskQueue, events string) *gatewayProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		childGateway+"=1",
		"WARREN_CLUSTERTEST_AMQP_URL="+url,
		"WARREN_CLUSTERTEST_RPC_QUEUE="+rpcQueue,
		"WARREN_CLUSTERTEST_TASK_QUEUE="+taskQueue,
		"WARREN_CLUSTERTEST_EVENTS="+events,
	)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gateway process: %v", err)
	}
	p := &gatewayProcess{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-addr:
	case <-p.done:
		t.Fatal("the gateway process ended before it listened")
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway process did not listen within 30s")
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *gatewayProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}
