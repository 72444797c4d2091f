package gateway

import (
	"log/slog"
	"time"

	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/logsvc"
)

// DefaultStreamWorkers is Config.StreamWorkers's default.
const DefaultStreamWorkers = 64

// Config configures a Server. The zero value serves the tutorials' entities
// on the local broker.
type Config struct {
	// AMQP configures the gateway's broker connection. Default: the local
	// broker, connection name "warren-gateway".
	AMQP amqpx.Config
	// RPCQueue is the queue Fibonacci requests are published to.
	// Default: "rpc_queue".
	RPCQueue string
	// ReplyMode selects how replies come back. Default: ReplyQueue, the
	// faster of the two here (see the README's measurements).
	ReplyMode ReplyMode
	// PublishChannels is the count of channels requests are published on
	// in ReplyQueue mode (ReplyDirect publishes on its consuming channel).
	// Default: 4.
	PublishChannels int
	// DefaultTimeout bounds a call that has no gRPC deadline. Default: 10s.
	DefaultTimeout time.Duration
	// PresenceInterval is how often the gateway checks that a worker
	// consumes the request queue. Calls waiting for a reply fail with
	// UNAVAILABLE within about this long after the last worker left.
	// Default: 250ms.
	PresenceInterval time.Duration
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
	// Tasks configures TaskService (task queue, events exchange, management
	// API). Default: see TaskConfig. Its Logger defaults to Logger.
	Tasks TaskConfig
	// Queues configures QueueService (Hello World). Default: see
	// QueueConfig. Its Logger defaults to Logger.
	Queues QueueConfig
	// Logs configures LogService (exchange names, subscription limits).
	// Default: the tutorials' exchanges; see logsvc.Config. Its Logger
	// defaults to Logger.
	Logs logsvc.Config
	// Logger receives the gateway's events. Default: slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.AMQP.Name == "" {
		c.AMQP.Name = "warren-gateway"
	}
	if c.RPCQueue == "" {
		c.RPCQueue = "rpc_queue"
	}
	if c.PublishChannels <= 0 {
		c.PublishChannels = 4
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 10 * time.Second
	}
	if c.PresenceInterval <= 0 {
		c.PresenceInterval = 250 * time.Millisecond
	}
	if c.StreamWorkers == 0 {
		c.StreamWorkers = DefaultStreamWorkers
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Tasks.Logger == nil {
		c.Tasks.Logger = c.Logger
	}
	if c.Queues.Logger == nil {
		c.Queues.Logger = c.Logger
	}
	if c.Logs.Logger == nil {
		c.Logs.Logger = c.Logger
	}
	if c.AMQP.Logger == nil {
		c.AMQP.Logger = c.Logger
	}
	return c
}
