package gateway

import (
	"context"
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
	// broker, connection name "warren-gateway". When its Tracing is
	// enabled, the gRPC calls are traced too (OpenTelemetry's gRPC stats
	// handler, installed by New): their server spans are the parents of
	// the core's spans.
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
	// MaxConnectionAge, when positive, is how long a client connection
	// may live: the server then sends it a GOAWAY, and the client dials
	// again (grpc keepalive.ServerParameters.MaxConnectionAge, jittered by
	// ±10 %). Behind an L4 load balancer this lets clients rebalance onto
	// a gateway added later. Default: 0, connections live as long as
	// their clients keep them.
	MaxConnectionAge time.Duration
	// MaxConnectionAgeGrace is how long calls in flight on a connection
	// past MaxConnectionAge may still run before it is closed. Default: 0,
	// which gRPC takes as no limit.
	MaxConnectionAgeGrace time.Duration
	// HealthInterval is how often the per-service health statuses are
	// brought up to date with what the services report (Readier).
	// Default: 250ms.
	HealthInterval time.Duration
	// Logger receives the gateway's events. Default: slog.Default().
	Logger *slog.Logger
	// AccessLog, when set, receives one line per gRPC call once it ended
	// (message "call"): its method, the status code the caller got, its
	// duration, the peer's address, the principal (Principal), the
	// correlation id or task id the core noted on it (core.NoteCall), and
	// the status message when it is not OK. Health checks are logged at
	// debug level. Default: nil, no access log.
	AccessLog *slog.Logger
	// Principal, when set, names who made a call, for the access log: it
	// is called once the call ended, with the context the access log got,
	// which carries the call's peer (with its TLS state) and metadata and
	// what the interceptors outside the access log put there, but not
	// what interceptors inside it (those of New's opts) derived; those can
	// note the principal on the call instead, with
	// core.NoteCall(ctx, "principal", name). "" leaves the principal
	// out. It must not return a credential. Default: nil: Auth's
	// CallPrincipal when Auth is set, else no principal in the access log.
	Principal func(context.Context) string
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
