// Package warrentest is the tests' harness: an in-process gateway served
// over bufconn, workers on a connection of their own, and the helpers
// every test of warren needs (Eventually, WantCode, a quiet logger).
// Entity names come from brokertest.Name, so tests never share queues or
// exchanges.
package warrentest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/worker"
)

// QuietLog discards everything.
var QuietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// Gateway is a gateway served over bufconn for one test.
type Gateway struct {
	*gateway.Server
	// Conn is a client connection to the gateway.
	Conn *grpc.ClientConn
	// Addr is the gateway's TCP address (StartGatewayTCP only).
	Addr string
	lis  *bufconn.Listener
	stop func()
}

// Dial opens another client connection to the gateway, with opts, closed
// at cleanup.
func (g *Gateway) Dial(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	target := g.Addr
	if g.lis != nil {
		target = "passthrough:///bufnet"
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return g.lis.DialContext(ctx) }))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Stop shuts the gateway down as SIGTERM would and waits for Serve to
// return. It is idempotent; cleanup calls it too.
func (g *Gateway) Stop() { g.stop() }

// StartGateway serves a gateway with services on the test broker (or
// cfg.AMQP.URLs, when set) until the test ends, and waits until it is
// connected. The connection is named after the test, and the logger is
// QuietLog unless cfg says otherwise.
func StartGateway(t testing.TB, cfg gateway.Config, services ...gateway.Service) *Gateway {
	t.Helper()
	g := ServeGateway(t, cfg, services...)
	Eventually(t, 15*time.Second, "gateway connected", g.Connected)
	return g
}

// StartGatewayTCP is StartGateway on a loopback TCP port (Addr), for
// clients that dial an address, such as the CLI.
func StartGatewayTCP(t testing.TB, cfg gateway.Config, services ...gateway.Service) *Gateway {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	g := serveGateway(t, lis, cfg, services)
	Eventually(t, 15*time.Second, "gateway connected", g.Connected)
	return g
}

// ServeGateway is StartGateway without the wait for the connection.
func ServeGateway(t testing.TB, cfg gateway.Config, services ...gateway.Service) *Gateway {
	t.Helper()
	return serveGateway(t, nil, cfg, services)
}

// serveGateway serves on lis, or on a bufconn listener when lis is nil.
func serveGateway(t testing.TB, lis net.Listener, cfg gateway.Config, services []gateway.Service) *Gateway {
	t.Helper()
	if len(cfg.AMQP.URLs) == 0 {
		cfg.AMQP.URLs = []string{brokertest.Require(t)}
	}
	if cfg.AMQP.Name == "" {
		cfg.AMQP.Name = "warren-test-" + t.Name()
	}
	if cfg.Logger == nil {
		cfg.Logger = QuietLog
	}
	srv := gateway.New(cfg, services)
	g := &Gateway{Server: srv}
	if lis == nil {
		g.lis = bufconn.Listen(1 << 20)
		lis = g.lis
	} else {
		g.Addr = lis.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve returned %v", err)
			}
		})
	}
	t.Cleanup(g.stop)
	g.Conn = g.Dial(t)
	return g
}

// Workers runs workers in a worker.Group on the test broker (or
// cfg.AMQP.URLs) until the test ends, and waits until it is connected.
// Stop, or the test's end, drains them as SIGTERM would.
type Workers struct {
	*worker.Group
	stop func()
}

// Stop drains the workers and waits for Run to return. It is idempotent.
func (w *Workers) Stop() { w.stop() }

// StartWorkers starts a Group of workers for the test.
func StartWorkers(t testing.TB, cfg worker.Config, workers ...worker.Worker) *Workers {
	t.Helper()
	if len(cfg.AMQP.URLs) == 0 {
		cfg.AMQP.URLs = []string{brokertest.Require(t)}
	}
	if cfg.AMQP.Name == "" {
		cfg.AMQP.Name = "warren-test-worker-" + t.Name()
	}
	if cfg.Logger == nil {
		cfg.Logger = QuietLog
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	g := worker.NewGroup(cfg, workers...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Run(ctx); close(done) }()
	var once sync.Once
	w := &Workers{Group: g, stop: func() { once.Do(func() { cancel(); <-done }) }}
	t.Cleanup(w.stop)
	Eventually(t, 15*time.Second, "workers connected", g.Connected)
	return w
}

// Eventually polls cond every few milliseconds until it holds, and fails
// the test when it does not within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WantCode fails the test unless err is a status error with code want
// (nil counts as codes.OK).
func WantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want code %v", got, err, want)
	}
}

// Sessions is a core.Component that counts the connections its
// Supervisor made.
type Sessions struct{ n atomic.Int32 }

// Connected counts a connection (core.Component).
func (s *Sessions) Connected(context.Context, *core.Conn) error { s.n.Add(1); return nil }

// Disconnected does nothing (core.Component).
func (s *Sessions) Disconnected(error) {}

// N is the count of connections so far.
func (s *Sessions) N() int32 { return s.n.Load() }
