package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/logsvc"
)

// Server is warren's gRPC gateway: the gRPC services, health and reflection
// on one grpc.Server, and the broker connection behind them.
type Server struct {
	cfg    Config
	grpc   *grpc.Server
	health *health.Server
	rpc    *rpcClient
	tasks  *TaskService
	queues *QueueService
	logs   *logsvc.Service
	sup    *amqpx.Supervisor

	serveOnce sync.Once
}

// New builds a Server. Nothing is dialled or served until Serve. opts are
// applied after the gateway's own server options, so they can override them.
func New(cfg Config, opts ...grpc.ServerOption) *Server {
	cfg = cfg.withDefaults()
	if cfg.StreamWorkers > 0 {
		opts = append([]grpc.ServerOption{grpc.NumStreamWorkers(uint32(cfg.StreamWorkers))}, opts...)
	}
	s := &Server{
		cfg:    cfg,
		grpc:   grpc.NewServer(opts...),
		health: health.NewServer(),
		rpc: newRPCClient(rpcConfig{
			queue:            cfg.RPCQueue,
			mode:             cfg.ReplyMode,
			channels:         cfg.PublishChannels,
			defaultTimeout:   cfg.DefaultTimeout,
			presenceInterval: cfg.PresenceInterval,
			log:              cfg.Logger,
		}),
		tasks:  NewTaskService(cfg.Tasks),
		queues: NewQueueService(cfg.Queues),
		logs:   logsvc.New(cfg.Logs),
	}
	warrenv1.RegisterFibonacciServiceServer(s.grpc, &fibonacciService{rpc: s.rpc})
	warrenv1.RegisterTaskServiceServer(s.grpc, s.tasks)
	warrenv1.RegisterQueueServiceServer(s.grpc, s.queues)
	warrenv1.RegisterLogServiceServer(s.grpc, s.logs)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.setServing(healthpb.HealthCheckResponse_NOT_SERVING)
	s.sup = amqpx.New(cfg.AMQP, s.rpc, s.tasks, s.queues, s.logs, healthHandler{s})
	return s
}

// servingNames are the health service names the gateway reports: the whole
// server ("") and each warren service.
var servingNames = []string{
	"",
	warrenv1.FibonacciService_ServiceDesc.ServiceName,
	warrenv1.TaskService_ServiceDesc.ServiceName,
	warrenv1.QueueService_ServiceDesc.ServiceName,
	warrenv1.LogService_ServiceDesc.ServiceName,
}

func (s *Server) setServing(st healthpb.HealthCheckResponse_ServingStatus) {
	for _, name := range servingNames {
		s.health.SetServingStatus(name, st)
	}
}

// healthHandler is the Supervisor's last handler: SERVING once every other
// handler is set up on a connection, NOT_SERVING as soon as it is lost.
type healthHandler struct{ s *Server }

func (h healthHandler) Connected(context.Context, *amqp.Connection) error {
	h.s.setServing(healthpb.HealthCheckResponse_SERVING)
	return nil
}

func (h healthHandler) Disconnected(error) {
	h.s.setServing(healthpb.HealthCheckResponse_NOT_SERVING)
}

// Connected reports whether the gateway holds a working broker connection.
func (s *Server) Connected() bool { return s.sup.Connected() }

// Serve connects to the broker and serves gRPC on lis until ctx ends, then
// shuts down: health NOT_SERVING, no new calls, in-flight calls drained for
// up to DrainTimeout (then cancelled), and finally the broker connection
// closed. It returns nil after a shutdown caused by ctx, or the error that
// stopped gRPC serving. Serve may be called once.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	err := errors.New("gateway: Serve called twice")
	s.serveOnce.Do(func() { err = s.serve(ctx, lis) })
	return err
}

func (s *Server) serve(ctx context.Context, lis net.Listener) error {
	amqpCtx, stopAMQP := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.sup.Run(amqpCtx) })

	served := make(chan error, 1)
	go func() { served <- s.grpc.Serve(lis) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	s.setServing(healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.Shutdown()
	// GracefulStop waits for streams; end them with a clear status first.
	s.tasks.Shutdown()
	s.queues.Shutdown()
	s.logs.Shutdown()
	s.stopGRPC()
	stopAMQP()
	wg.Wait()
	return err
}

// stopGRPC stops gracefully, falling back to a hard stop after the drain
// timeout.
func (s *Server) stopGRPC() {
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.cfg.Logger.Warn("gateway: drain timeout; cancelling in-flight calls", "timeout", s.cfg.DrainTimeout)
		s.grpc.Stop()
		<-done
	}
}
