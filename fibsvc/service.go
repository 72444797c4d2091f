package fibsvc

import (
	"context"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/fib"
	"github.com/warrenrpc/warren/internal/wire"
)

// DefaultQueue is the tutorial's RPC queue.
const DefaultQueue = "rpc_queue"

// Config configures a Service. The zero value calls rpc_queue.
type Config struct {
	// Queue is the queue requests are published to. Default: "rpc_queue".
	Queue string
	// ReplyMode selects how replies come back. Default: core.ReplyQueue,
	// the faster of the two here (see the README's measurements).
	ReplyMode core.ReplyMode
	// Channels is the count of channels requests are published on in
	// core.ReplyQueue mode. Default: 4.
	Channels int
	// DefaultTimeout bounds a call that has no gRPC deadline. Default: 10s.
	DefaultTimeout time.Duration
	// PresenceInterval is how often the gateway checks that a worker
	// consumes the queue; calls waiting for a reply fail with UNAVAILABLE
	// within about this long after the last worker left. Default: 250ms.
	PresenceInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	return c
}

// Service implements warren.v1.FibonacciService over a core.Client.
type Service struct {
	warrenv1.UnimplementedFibonacciServiceServer

	cfg    Config
	client *core.Client
}

// New returns a Service; it serves once a gateway attached it.
func New(cfg Config) *Service { return &Service{cfg: cfg.withDefaults()} }

// Name implements gateway.Service.
func (s *Service) Name() string { return warrenv1.FibonacciService_ServiceDesc.ServiceName }

// Attach implements gateway.Service: the request/reply client, watching
// the queue from the start so health knows whether a worker is there.
func (s *Service) Attach(sup *core.Supervisor) {
	s.client = core.NewClient(sup, core.ClientConfig{
		ReplyMode:        s.cfg.ReplyMode,
		Channels:         s.cfg.Channels,
		Timeout:          s.cfg.DefaultTimeout,
		PresenceInterval: s.cfg.PresenceInterval,
	})
	s.client.Watch(s.cfg.Queue)
}

// Register implements gateway.Service.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	warrenv1.RegisterFibonacciServiceServer(r, s)
}

// Ready reports whether a call would be published now: a worker consumes
// the queue (gateway.Readier, for health).
func (s *Service) Ready() error { return s.client.Ready(s.cfg.Queue) }

// Client is the request/reply client, for tests and measurements.
func (s *Service) Client() *core.Client { return s.client }

// Fibonacci checks n, sends it to a worker as the tutorial's decimal text and
// returns the worker's decimal reply.
func (s *Service) Fibonacci(ctx context.Context, req *warrenv1.FibonacciRequest) (*warrenv1.FibonacciResponse, error) {
	if req.GetN() > fib.MaxN {
		return nil, core.Argumentf("n = %d is larger than %d", req.GetN(), fib.MaxN)
	}
	var buf [10]byte
	d, err := s.client.Call(ctx, s.cfg.Queue, amqp.Publishing{
		ContentType: wire.ContentTypeText,
		Body:        strconv.AppendUint(buf[:0], uint64(req.GetN()), 10),
	})
	if err != nil {
		return nil, err
	}
	if !isDecimal(d.Body) {
		// A foreign worker answered something else; never pass it on as
		// a value (nor as invalid UTF-8 in a proto string).
		return nil, status.Errorf(codes.Internal, "worker replied with a body that is not a decimal number (%d bytes)", len(d.Body))
	}
	return &warrenv1.FibonacciResponse{Value: string(d.Body)}, nil
}

func isDecimal(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
