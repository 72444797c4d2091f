package gateway

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/warrenrpc/warren/auth"
	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/metrics"
)

// DefaultStreamWorkers is Config.StreamWorkers's default.
const DefaultStreamWorkers = 64

// Config configures a Server. The zero value serves on the local broker.
type Config struct {
	// AMQP configures the gateway's broker connection. Default: the local
	// broker, connection name "warren-gateway".
	AMQP core.Config
	// StreamWorkers is the count of goroutines the gRPC server keeps to run
	// calls on (grpc.NumStreamWorkers). A call that finds one idle runs on
	// it, on the stack it has already grown, instead of on a new goroutine
	// whose stack grows by copying; calls beyond the count, and long-lived
	// streams that hold a worker, get new goroutines as without it.
	// Measured here (make bench), the pool answers 1.03-1.09 x the calls/s
	// at 64 concurrent Fibonacci calls and costs a lone call nothing.
	// Default: DefaultStreamWorkers. Negative: no pool.
	StreamWorkers int
	// DrainTimeout bounds how long shutdown waits for in-flight calls before
	// it cancels them. Default: 10s.
	DrainTimeout time.Duration
	// HealthInterval is how often the per-service health statuses are
	// brought up to date with what the services report (Readier).
	// Default: 250ms.
	HealthInterval time.Duration
	// Logger receives the gateway's events. Default: slog.Default().
	Logger *slog.Logger
	// Metrics, when set, counts the gateway's gRPC calls (its
	// interceptors, installed by New, outside the error boundary, so they
	// see the status the caller gets) and, unless AMQP.Metrics is set,
	// everything the core does for the services. Default: nil, no
	// metrics.
	Metrics *metrics.Metrics
	// TLS, when set, serves gRPC over TLS only: a plaintext client fails
	// its handshake. NewTLS builds one that reloads its files. Default:
	// nil, plaintext.
	TLS *tls.Config
	// Auth, when set, authenticates and authorizes every call (its
	// interceptors, installed by New inside the metrics' and outside the
	// error boundary) and scopes the routing and binding keys the core
	// uses for it; Serve runs its file watcher. Default: nil, every call
	// is served.
	Auth *auth.Guard
}

func (c Config) withDefaults() Config {
	if c.AMQP.Name == "" {
		c.AMQP.Name = "warren-gateway"
	}
	if c.StreamWorkers == 0 {
		c.StreamWorkers = DefaultStreamWorkers
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.AMQP.Logger == nil {
		c.AMQP.Logger = c.Logger
	}
	if c.AMQP.Metrics == nil && c.Metrics != nil {
		c.AMQP.Metrics = c.Metrics
	}
	return c
}
