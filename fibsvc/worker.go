package fibsvc

import (
	"context"
	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/fib"
	"github.com/warrenrpc/warren/internal/wire"
)

// Handler answers one Fibonacci request: the decimal text of n in, the
// decimal text of fib(n) out. The content type is not looked at: clients
// send what their library sets (none from pika and amqplib,
// application/octet-stream from Ruby's bunny), and the body is what
// counts. A body that is not the decimal text of n is INVALID_ARGUMENT.
func Handler(_ context.Context, req *amqp.Delivery) (amqp.Publishing, error) {
	n, err := fib.ParseRequest(req.Body)
	if err != nil {
		return amqp.Publishing{}, core.Argumentf("%v", err)
	}
	return amqp.Publishing{
		ContentType: wire.ContentTypeText,
		Body:        fib.AppendCompute(make([]byte, 0, 24), n),
	}, nil
}

// WorkerConfig configures a Fibonacci worker. The zero value serves
// rpc_queue.
type WorkerConfig struct {
	// Queue is the RPC queue to consume. Default: "rpc_queue".
	Queue string
	// QueueType is the type the worker declares the queue with: quorum
	// (durable, as today's official tutorials declare rpc_queue) or
	// core.QueueClassic (not durable, as the older tutorials, and the
	// seed's rpc_server.py, declare it). Default (""): quorum. A queue that
	// exists with other properties is used as it is, with a warning.
	QueueType core.QueueType
	// Prefetch is the count of unacknowledged requests the broker may push
	// to this worker at once. Default: 64.
	Prefetch int
	// Concurrency is the count of goroutines computing replies.
	// Default: runtime.GOMAXPROCS(0).
	Concurrency int
	// Logger receives bad requests and failures. Default: the
	// Supervisor's.
	Logger *slog.Logger
}

// Worker serves Fibonacci requests from the queue with Handler, on a
// core.Server. Build it with NewWorker and run it in a worker.Group.
type Worker struct {
	cfg WorkerConfig
	srv *core.Server
}

// NewWorker returns a Worker; it serves once a worker.Group attached it.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	return &Worker{cfg: cfg}
}

// Attach builds the worker's core.Server on sup (worker.Worker).
func (w *Worker) Attach(sup *core.Supervisor) {
	w.srv = core.NewServer(sup, core.ServerConfig{
		Queue:       core.QueueSpec{Name: w.cfg.Queue, Type: w.cfg.QueueType},
		Prefetch:    w.cfg.Prefetch,
		Concurrency: w.cfg.Concurrency,
		Name:        "warren-fib",
		Logger:      w.cfg.Logger,
	}, core.HandlerFunc(Handler))
}

// Shutdown stops consuming and waits until the requests already received
// are answered, or ctx ends (worker.Worker). The worker consumes nothing
// afterwards, even after a reconnect.
func (w *Worker) Shutdown(ctx context.Context) error { return w.srv.Shutdown(ctx) }

// Stats counts what the worker did.
func (w *Worker) Stats() core.ServerStats { return w.srv.Stats() }
