package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/tap"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/frame"
	"github.com/warrenrpc/warren/internal/wire"
)

// A Service is one gRPC service of the gateway, built on the core.
type Service interface {
	// Name is the service's full gRPC name ("warren.v1.TaskService"),
	// under which health reports it.
	Name() string
	// Attach builds the service's core components (publishers,
	// subscribers, clients, and Components of its own that declare what
	// it owns) on the gateway's Supervisor. New calls it once.
	Attach(sup *core.Supervisor)
	// Register registers the gRPC service. New calls it once, after
	// Attach.
	Register(r grpc.ServiceRegistrar)
}

// A MetadataReader is a Service that forwards its callers' metadata to
// workers. New tells it, by UseIncomingMetadata, that the gateway puts
// each call's forwarded metadata in the call's context at the transport,
// uncopied (wire.Incoming), so the service need not copy all of it from
// gRPC's context on every call.
type MetadataReader interface {
	UseIncomingMetadata()
}

// A Readier is a Service whose calls can fail for a reason of its own
// while the broker connection is up (say, no worker consumes its queue).
// Health reports it SERVING only while Ready returns nil.
type Readier interface {
	Ready() error
}

// ErrShutdown ends the streams still open when the gateway shuts down; it
// reaches their clients as UNAVAILABLE.
var ErrShutdown = errors.New("gateway: shutting down")

// Server is warren's gRPC gateway: the services, health and reflection on
// one grpc.Server, and the broker connection behind them.
type Server struct {
	cfg      Config
	grpc     *grpc.Server
	health   *health.Server
	sup      *core.Supervisor
	services []Service
	streams  streams
	calls    calls       // unary calls in flight, for the drain's log
	up       atomic.Bool // every Component is set up on a connection

	serveOnce sync.Once
}

// New builds a Server serving services. Nothing is dialled or served until
// Serve. opts are applied after the gateway's own server options, so they
// can override them: a grpc.InTapHandle among them replaces the gateway's,
// which hands the callers' metadata to routed services (MetadataReader),
// and those then forward none.
func New(cfg Config, services []Service, opts ...grpc.ServerOption) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		health:   health.NewServer(),
		sup:      core.NewSupervisor(cfg.AMQP),
		services: services,
	}
	unary := []grpc.UnaryServerInterceptor{s.calls.intercept, unaryBoundary}
	stream := []grpc.StreamServerInterceptor{s.streams.intercept}
	unary, stream, security := cfg.security(unary, stream)
	if cfg.AccessLog != nil { // outside authentication and the error boundary, inside metrics
		principal := cfg.Principal
		if principal == nil && cfg.Auth != nil {
			principal = cfg.Auth.CallPrincipal
		}
		a := &accessLog{log: cfg.AccessLog, principal: principal}
		unary = append([]grpc.UnaryServerInterceptor{a.unary}, unary...)
		stream = append([]grpc.StreamServerInterceptor{a.stream}, stream...)
	}
	if cfg.Metrics != nil {
		unary = append([]grpc.UnaryServerInterceptor{cfg.Metrics.UnaryServerInterceptor()}, unary...)
		stream = append([]grpc.StreamServerInterceptor{cfg.Metrics.StreamServerInterceptor()}, stream...)
	}
	base := []grpc.ServerOption{
		// Routed services (package route) pass messages through as
		// bytes; every other message is proto as usual.
		grpc.ForceServerCodecV2(frame.Codec{}),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.InTapHandle(tapMetadata),
	}
	if cfg.StreamWorkers > 0 {
		base = append(base, grpc.NumStreamWorkers(uint32(cfg.StreamWorkers)))
	}
	base = append(base, security...)
	base = append(base, traceOptions(cfg.AMQP.Tracing)...)
	if cfg.MaxConnectionAge > 0 {
		base = append(base, grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
		}))
	}
	s.grpc = grpc.NewServer(append(base, opts...)...)
	for _, svc := range services {
		if r, ok := svc.(MetadataReader); ok {
			r.UseIncomingMetadata()
		}
		svc.Attach(s.sup)
		svc.Register(s.grpc)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	registerReflection(s.grpc, cfg.Logger, services)
	if cfg.Metrics != nil {
		cfg.Metrics.InitializeServer(s.grpc)
	}
	s.sup.Add(healthComponent{s})
	s.updateHealth()
	return s
}

// tapMetadata puts a call's metadata, when it has keys that travel to
// workers, in the call's context as the transport received it
// (wire.WithIncoming): MetadataReaders read it there.
func tapMetadata(ctx context.Context, info *tap.Info) (context.Context, error) {
	return wire.WithIncoming(ctx, info.Header), nil
}

// unaryBoundary is the error boundary of unary and client-streaming
// calls: whatever error a handler returns reaches the caller as the status
// core.Status maps it to.
func unaryBoundary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	return resp, core.Status(err)
}

// Connected reports whether the gateway holds a working broker connection.
func (s *Server) Connected() bool { return s.sup.Connected() }

// updateHealth sets every health status: the server's ("") follows the
// broker connection, each service's the connection and its Ready.
func (s *Server) updateHealth() {
	up := s.up.Load()
	s.health.SetServingStatus("", servingStatus(up))
	for _, svc := range s.services {
		ok := up
		if r, isReadier := svc.(Readier); ok && isReadier {
			ok = r.Ready() == nil
		}
		s.health.SetServingStatus(svc.Name(), servingStatus(ok))
	}
}

func servingStatus(ok bool) healthpb.HealthCheckResponse_ServingStatus {
	if ok {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// healthComponent is the Supervisor's last Component: it updates health as
// soon as every other Component is set up on a connection, and as soon as
// the connection is lost.
type healthComponent struct{ s *Server }

func (h healthComponent) Connected(context.Context, *core.Conn) error {
	h.s.up.Store(true)
	h.s.updateHealth()
	return nil
}

func (h healthComponent) Disconnected(error) {
	h.s.up.Store(false)
	h.s.updateHealth()
}

// Serve connects to the broker and serves gRPC on lis until ctx ends, then
// shuts down: health NOT_SERVING, open streams ended with UNAVAILABLE
// (ErrShutdown), no new calls, in-flight calls drained for up to
// DrainTimeout (then cancelled), and finally the broker connection closed.
// It returns nil after a shutdown caused by ctx, or the error that stopped
// gRPC serving. Serve may be called once.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	err := errors.New("gateway: Serve called twice")
	s.serveOnce.Do(func() { err = s.serve(ctx, lis) })
	return err
}

func (s *Server) serve(ctx context.Context, lis net.Listener) error {
	amqpCtx, stopAMQP := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.sup.Run(amqpCtx) })
	if s.cfg.Auth != nil {
		wg.Go(func() { s.cfg.Auth.Run(amqpCtx) })
	}

	healthDone := make(chan struct{})
	wg.Go(func() {
		t := time.NewTicker(s.cfg.HealthInterval)
		defer t.Stop()
		for {
			select {
			case <-healthDone:
				return
			case <-t.C:
				s.updateHealth()
			}
		}
	})

	if s.cfg.TLS != nil {
		lis = tlsOnly{lis}
	}
	served := make(chan error, 1)
	go func() { served <- s.grpc.Serve(lis) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	close(healthDone)
	s.health.Shutdown() // NOT_SERVING for every name, from now on
	// GracefulStop waits for streams; end them with a clear status first.
	s.streams.shutdown()
	s.stopGRPC()
	stopAMQP()
	wg.Wait()
	s.cfg.Logger.Info("gateway: broker connection closed")
	return err
}

// streams tracks the open streaming calls so that shutdown can end them:
// GracefulStop waits for streams, and a subscription never ends by itself.
// It is also the error boundary of streaming calls.
type streams struct {
	mu     sync.Mutex
	open   map[*context.CancelCauseFunc]struct{}
	closed bool
}

func (st *streams) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return core.Status(ErrShutdown)
	}
	if st.open == nil {
		st.open = map[*context.CancelCauseFunc]struct{}{}
	}
	st.open[&cancel] = struct{}{}
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		delete(st.open, &cancel)
		st.mu.Unlock()
	}()
	err := h(srv, &serverStream{ServerStream: ss, ctx: ctx})
	if err != nil && ctx.Err() != nil && ss.Context().Err() == nil {
		// The gateway ended the stream: say why, whatever the handler
		// made of its context's end.
		err = context.Cause(ctx)
	}
	return core.Status(err)
}

// shutdown ends every open stream with ErrShutdown and refuses new ones.
func (st *streams) shutdown() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	for cancel := range st.open {
		(*cancel)(ErrShutdown)
	}
}

// serverStream is a grpc.ServerStream with the gateway's context.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }
