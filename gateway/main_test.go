package gateway_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
	"github.com/warrenrpc/warren/queuesvc"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	quietLog = warrentest.QuietLog
	wantCode = warrentest.WantCode
)

// gwConfig configures a test's full gateway.
type gwConfig struct {
	RPCQueue         string
	AMQP             core.Config
	DrainTimeout     time.Duration
	StreamWorkers    int
	PresenceInterval time.Duration
	// Tasks and Logs name the task queue, the events exchange and the log
	// exchanges' prefix; empty: names of the test's own.
	Tasks, Events, Logs string
}

// names fills the entity names cfg leaves empty with names of the test's
// own: the shared broker's task_queue and log exchanges are nobody's test
// fixture.
func (cfg gwConfig) names(t testing.TB) gwConfig {
	if cfg.RPCQueue == "" {
		cfg.RPCQueue = brokertest.Name(t, "rpc")
	}
	if cfg.Tasks == "" {
		cfg.Tasks = brokertest.Name(t, "tasks")
	}
	if cfg.Events == "" {
		cfg.Events = brokertest.Name(t, "events")
	}
	if cfg.Logs == "" {
		cfg.Logs = brokertest.Name(t, "logs")
	}
	return cfg
}

// testGateway is a full gateway (every service of warren) for one test.
type testGateway struct {
	*warrentest.Gateway
	cfg  gwConfig
	conn *grpc.ClientConn
	fib  warrenv1.FibonacciServiceClient
}

func (cfg gwConfig) services() []gateway.Service {
	return []gateway.Service{
		fibsvc.New(fibsvc.Config{Queue: cfg.RPCQueue, PresenceInterval: cfg.PresenceInterval}),
		tasksvc.New(tasksvc.Config{Queue: cfg.Tasks, EventsExchange: cfg.Events, Logger: quietLog}),
		queuesvc.New(queuesvc.Config{Logger: quietLog}),
		logsvc.New(logsvc.Config{
			FanoutExchange: cfg.Logs + ".fanout", DirectExchange: cfg.Logs + ".direct", TopicExchange: cfg.Logs + ".topic",
			Logger: quietLog,
		}),
	}
}

// serveRPCGateway serves a full gateway without waiting for its broker
// connection.
func serveRPCGateway(t testing.TB, cfg gwConfig) *testGateway {
	t.Helper()
	cfg = cfg.names(t)
	g := warrentest.ServeGateway(t, gateway.Config{AMQP: cfg.AMQP, DrainTimeout: cfg.DrainTimeout, StreamWorkers: cfg.StreamWorkers}, cfg.services()...)
	return &testGateway{Gateway: g, cfg: cfg, conn: g.Conn, fib: warrenv1.NewFibonacciServiceClient(g.Conn)}
}

// startRPCGateway serves a full gateway until the test ends and waits for
// its broker connection.
func startRPCGateway(t testing.TB, cfg gwConfig) *testGateway {
	t.Helper()
	g := serveRPCGateway(t, cfg)
	waitFor(t, "gateway connected", g.Connected)
	return g
}

// startRPCGatewayAt is startRPCGateway with the AMQP URL given.
func startRPCGatewayAt(t testing.TB, url string, cfg gwConfig) *testGateway {
	t.Helper()
	cfg.AMQP.URLs = []string{url}
	return startRPCGateway(t, cfg)
}

// proxiedConfig is the configuration of the fault tests' gateways: quick
// heartbeats and backoff.
func proxiedConfig(url, queue string) gwConfig {
	return gwConfig{
		RPCQueue: queue,
		AMQP:     core.Config{URLs: []string{url}, Heartbeat: time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
	}
}

// startFibWorker runs a warren Fibonacci worker on queue until the test
// ends; url, if given, is its broker.
func startFibWorker(t testing.TB, queue string, url ...string) *warrentest.Workers {
	t.Helper()
	return warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{URLs: url}},
		fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: queue, Logger: quietLog}))
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	warrentest.Eventually(t, 10*time.Second, what, cond)
}
