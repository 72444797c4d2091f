package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/route"
)

// ServerConfig configures a Server. The zero value works.
type ServerConfig struct {
	// Prefetch is the count of unacknowledged requests the broker may
	// push at once, per routed method. Default: 64.
	Prefetch int
	// Concurrency is the count of goroutines running each routed
	// method's handler. Default: runtime.GOMAXPROCS(0).
	Concurrency int
	// Logger receives failures and handler panics. Default: the group's.
	Logger *slog.Logger
	// QueuePrefix is put before every route's queue name; the gateway
	// must be given the same (route.Config.QueuePrefix).
	QueuePrefix string
}

// Server is warren's worker SDK: it serves proto services from the queues
// their warren routes name (proto/warren/v1/options.proto).
//
// Server is a grpc.ServiceRegistrar, so a service's implementation is
// registered on it with the function protoc-gen-go-grpc generated, exactly
// as on a grpc.Server:
//
//	srv := worker.NewServer(worker.ServerConfig{})
//	inventoryv1.RegisterInventoryServiceServer(srv, impl)
//	group := worker.NewGroup(worker.Config{}, srv)
//	err := group.Run(ctx)
//
// Each routed method becomes a core.Server on its queue, declared with the
// route's queue type. A handler's context carries the call's deadline and
// the caller's gRPC metadata (metadata.FromIncomingContext); the error it
// returns travels back as the caller's status, details included; a panic
// is INTERNAL and the Server keeps serving. A request is acknowledged
// after its reply is published. Methods without a route are not served.
type Server struct {
	cfg ServerConfig

	mu      sync.Mutex
	methods []method
	servers []*core.Server
}

// method is one routed method of a registered implementation.
type method struct {
	route   route.Method
	handler core.Handler
}

// NewServer returns a Server with no service; register them before the
// Server is given to NewGroup.
func NewServer(cfg ServerConfig) *Server { return &Server{cfg: cfg} }

// RegisterService registers impl as the implementation of the service
// desc describes (grpc.ServiceRegistrar). Its descriptor comes from the
// protobuf registry its generated code filled. Like grpc.Server's, it
// panics when impl does not implement desc's handler type, and also when
// the service's routes are wrong or none of its methods has one: these
// are mistakes of the program, found at its start.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	if err := s.register(desc, impl); err != nil {
		panic(fmt.Sprintf("worker: RegisterService(%s): %v", desc.ServiceName, err))
	}
}

func (s *Server) register(desc *grpc.ServiceDesc, impl any) error {
	if desc.HandlerType != nil {
		ht := reflect.TypeOf(desc.HandlerType).Elem()
		if impl == nil || !reflect.TypeOf(impl).Implements(ht) {
			return fmt.Errorf("%T does not implement %v", impl, ht)
		}
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(desc.ServiceName))
	if err != nil {
		return fmt.Errorf("no descriptor: %w (is its generated package linked in?)", err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return fmt.Errorf("%s is a %T, not a service", desc.ServiceName, d)
	}
	routes, err := route.Methods(sd)
	if err != nil {
		return err
	}
	routes = route.WithQueuePrefix(routes, s.cfg.QueuePrefix)
	var added []method
	for _, r := range routes {
		switch r.Pattern {
		case route.RPC:
			md := findMethod(desc, string(r.Desc.Name()))
			if md == nil {
				return fmt.Errorf("%s has a route but no handler in the ServiceDesc", r.Desc.FullName())
			}
			added = append(added, method{route: r, handler: unaryHandler(r, md.Handler, impl)})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.servers != nil {
		return errors.New("the Server is already attached to a group")
	}
	s.methods = append(s.methods, added...)
	return nil
}

func findMethod(desc *grpc.ServiceDesc, name string) *grpc.MethodDesc {
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == name {
			return &desc.Methods[i]
		}
	}
	return nil
}

// Attach builds a core.Server for every routed method on sup (Worker).
func (s *Server) Attach(sup *core.Supervisor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.methods {
		s.servers = append(s.servers, core.NewServer(sup, core.ServerConfig{
			Queue:       core.QueueSpec{Name: m.route.Queue, Durable: true, Type: m.route.QueueType},
			Prefetch:    s.cfg.Prefetch,
			Concurrency: s.cfg.Concurrency,
			Name:        "warren-" + string(m.route.Desc.Name()),
			Logger:      s.cfg.Logger,
		}, m.handler))
	}
}

// Shutdown stops consuming every method's queue and waits until the
// requests already received are answered, or ctx ends (Worker).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := s.servers
	s.mu.Unlock()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() { errs[i] = srv.Shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// unaryHandler answers an RPC route's requests with the generated method
// handler h of impl.
func unaryHandler(r route.Method, h grpc.MethodHandler, impl any) core.Handler {
	in, out := string(r.Desc.Input().FullName()), string(r.Desc.Output().FullName())
	return core.HandlerFunc(func(ctx context.Context, d *amqp.Delivery) (amqp.Publishing, error) {
		if d.Type != "" && d.Type != in {
			return amqp.Publishing{}, status.Errorf(codes.InvalidArgument, "worker: a request of type %q, want %s", d.Type, in)
		}
		if md := wire.Metadata(d.Headers); md != nil {
			ctx = metadata.NewIncomingContext(ctx, md)
		}
		dec := func(v any) error {
			m, ok := v.(proto.Message)
			if !ok {
				return status.Errorf(codes.Internal, "worker: %T is not a proto message", v)
			}
			if err := proto.Unmarshal(d.Body, m); err != nil {
				return status.Errorf(codes.InvalidArgument, "worker: the request is not a %s: %v", in, err)
			}
			return nil
		}
		resp, err := h(impl, ctx, dec, nil)
		if err != nil {
			return amqp.Publishing{}, err
		}
		m, ok := resp.(proto.Message)
		if !ok {
			return amqp.Publishing{}, status.Errorf(codes.Internal, "worker: the handler returned a %T, not a proto message", resp)
		}
		body, err := proto.Marshal(m)
		if err != nil {
			return amqp.Publishing{}, status.Errorf(codes.Internal, "worker: encode the reply: %v", err)
		}
		return amqp.Publishing{ContentType: wire.ContentTypeProtobuf, Type: out, Body: body}, nil
	})
}
