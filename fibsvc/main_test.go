package fibsvc_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gwConfig configures the gateway and FibonacciService of a test.
type gwConfig struct {
	RPCQueue         string
	ReplyMode        core.ReplyMode
	PresenceInterval time.Duration
	DefaultTimeout   time.Duration
	AMQP             core.Config
}

// rpcTestGateway is a gateway serving FibonacciService for one test.
type rpcTestGateway struct {
	*warrentest.Gateway
	svc  *fibsvc.Service
	conn *grpc.ClientConn
	fib  warrenv1.FibonacciServiceClient
}

// startRPCGateway serves a gateway with FibonacciService on cfg.RPCQueue
// until the test ends.
func startRPCGateway(t testing.TB, cfg gwConfig) *rpcTestGateway {
	t.Helper()
	svc := fibsvc.New(fibsvc.Config{
		Queue: cfg.RPCQueue, ReplyMode: cfg.ReplyMode,
		PresenceInterval: cfg.PresenceInterval, DefaultTimeout: cfg.DefaultTimeout,
	})
	g := warrentest.StartGateway(t, gateway.Config{AMQP: cfg.AMQP}, svc)
	return &rpcTestGateway{Gateway: g, svc: svc, conn: g.Conn, fib: warrenv1.NewFibonacciServiceClient(g.Conn)}
}

// startFibWorker runs a warren Fibonacci worker on queue until the test ends.
func startFibWorker(t testing.TB, queue string) *fibsvc.Worker {
	t.Helper()
	w := fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: queue, Logger: warrentest.QuietLog})
	warrentest.StartWorkers(t, worker.Config{}, w)
	return w
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	warrentest.Eventually(t, 10*time.Second, what, cond)
}
