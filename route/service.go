package route

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/frame"
	"github.com/warrenrpc/warren/internal/wire"
)

// Config configures the gateway side of routed services.
type Config struct {
	// ReplyMode selects how RPC replies come back. Default:
	// core.ReplyQueue.
	ReplyMode core.ReplyMode
	// DefaultTimeout bounds a call that has no gRPC deadline and whose
	// route sets no timeout. Default: 10s.
	DefaultTimeout time.Duration
	// PresenceInterval is how often the gateway checks that workers
	// consume the RPC queues. Default: 250ms.
	PresenceInterval time.Duration
	// Prefix is put before the names of every route's queues and
	// exchanges, so that several deployments (or tests) share a vhost;
	// the workers must be given the same (worker.ServerConfig.Prefix).
	Prefix string
	// Logger receives warnings, such as an event exchange that exists
	// with other properties. Default: the gateway's.
	Logger *slog.Logger
	// MaxLength bounds the messages one subscription holds in the gateway
	// while its client reads slowly (core.MuxConfig.MaxLength): one more
	// ends that subscription with RESOURCE_EXHAUSTED, and no other.
	// Default: 10000.
	MaxLength int
	// MaxBindingKeys bounds the binding keys of one subscription.
	// Default: 64.
	MaxBindingKeys int
}

// Service serves one routed proto service on the gateway
// (gateway.Service). Its gRPC methods are the service's routed methods;
// the others answer UNIMPLEMENTED.
//
// The gateway must run with frame.Codec as its server codec (gateway.New
// installs it): requests reach the broker as the bytes that came, and
// replies go back as the worker sent them, after a cheap check that they
// are well-formed protobuf.
type Service struct {
	routes    Routes
	cfg       Config
	client    *core.Client         // RPC routes' requests
	publisher *core.Publisher      // task and event routes' publishings
	mux       map[string]*core.Mux // subscribe routes' subscriptions, by exchange
	tapped    bool                 // the gateway puts forwarded metadata in the context (UseIncomingMetadata)
}

// NewService returns the gateway side of r.
func NewService(r Routes, cfg Config) *Service {
	r.Methods = WithPrefix(r.Methods, cfg.Prefix)
	if cfg.MaxLength <= 0 {
		cfg.MaxLength = 10000
	}
	if cfg.MaxBindingKeys <= 0 {
		cfg.MaxBindingKeys = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{routes: r, cfg: cfg}
}

// NewServices returns the gateway side of every routed service in the
// descriptor sets at paths (ReadFiles, Services).
func NewServices(cfg Config, paths ...string) ([]*Service, error) {
	files, err := ReadFiles(paths...)
	if err != nil {
		return nil, err
	}
	all, err := Services(files)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("route: descriptor sets %v: no service has a method with a warren route", paths)
	}
	svcs := make([]*Service, len(all))
	for i, r := range all {
		svcs[i] = NewService(r, cfg)
	}
	return svcs, nil
}

// Descriptors are the service's file and its imports, with the comments
// the descriptor set holds (gateway.Describer): reflection serves them.
func (s *Service) Descriptors() gateway.Resolver {
	if s.routes.Files == nil {
		return new(protoregistry.Files)
	}
	return s.routes.Files
}

// Name implements gateway.Service.
func (s *Service) Name() string { return string(s.routes.Desc.FullName()) }

// Attach implements gateway.Service: the core components the routes need
// (a Client for rpc and stream routes, a Publisher for task and event
// routes, one core.Mux per exchange of the subscribe routes), and the declaration of the
// exchanges the event and subscribe routes name.
func (s *Service) Attach(sup *core.Supervisor) {
	// The exchanges first: a history stream is bound to its exchange when
	// its Mux connects.
	var exchanges []core.ExchangeSpec
	declared := map[string]bool{}
	for _, m := range s.routes.Methods {
		if (m.Pattern == Event || m.Pattern == Subscribe) && !declared[m.Exchange] {
			declared[m.Exchange] = true
			exchanges = append(exchanges, core.ExchangeSpec{Name: m.Exchange, Kind: m.Kind, Durable: true})
		}
	}
	if len(exchanges) > 0 {
		sup.Add(declarer{exchanges: exchanges, log: s.cfg.Logger})
	}
	// Then the Muxes, before the Publisher: a Mux with a history binds its
	// stream when it connects, so that it keeps what is published from
	// the first event on.
	for _, m := range s.routes.Methods {
		if m.Pattern != Subscribe || s.mux[m.Exchange] != nil {
			continue
		}
		if s.mux == nil {
			s.mux = map[string]*core.Mux{}
		}
		s.mux[m.Exchange] = core.NewMux(sup, core.MuxConfig{Exchange: m.Exchange, Kind: m.Kind, MaxLength: s.cfg.MaxLength, History: m.History})
	}
	for _, m := range s.routes.Methods {
		sup.Known(m.Queue, m.Exchange) // labels of the metrics
		switch m.Pattern {
		case RPC, Stream:
			if s.client == nil {
				s.client = core.NewClient(sup, core.ClientConfig{
					ReplyMode:        s.cfg.ReplyMode,
					Timeout:          s.cfg.DefaultTimeout,
					PresenceInterval: s.cfg.PresenceInterval,
				})
			}
			s.client.Watch(m.Queue)
		case Task, Event:
			if s.publisher == nil {
				s.publisher = core.NewPublisher(sup, core.PublisherConfig{Timeout: s.cfg.DefaultTimeout})
			}
		}
	}
}

// declarer declares the event routes' exchanges on every connection: the
// gateway owns what it publishes to.
type declarer struct {
	exchanges []core.ExchangeSpec
	log       *slog.Logger
}

func (d declarer) Connected(_ context.Context, conn *core.Conn) error {
	for _, ex := range d.exchanges {
		if strings.HasPrefix(ex.Name, "amq.") {
			continue // the broker's own, which exist and cannot be declared
		}
		if err := core.DeclareExchange(conn.Connection, ex, d.log); err != nil {
			return err
		}
	}
	return nil
}

func (declarer) Disconnected(error) {}

// Ready reports an error while a routed method's queue has no worker
// (gateway.Readier).
func (s *Service) Ready() error {
	var errs []error
	for _, m := range s.routes.Methods {
		if m.Pattern == RPC || m.Pattern == Stream {
			if err := s.client.Ready(m.Queue); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Register implements gateway.Service: the service as a grpc.ServiceDesc
// built from its descriptor.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	desc := &grpc.ServiceDesc{
		ServiceName: s.Name(),
		HandlerType: (*any)(nil),
		Metadata:    s.routes.Desc.ParentFile().Path(),
	}
	for _, m := range s.routes.Methods {
		if m.Pattern == Subscribe || m.Pattern == Stream {
			desc.Streams = append(desc.Streams, grpc.StreamDesc{
				StreamName:    string(m.Desc.Name()),
				Handler:       s.stream(m),
				ServerStreams: true,
			})
			continue
		}
		var h func(context.Context, Method, *frame.Frame) (*frame.Frame, error)
		switch m.Pattern {
		case RPC:
			h = s.rpc
		case Task:
			h = s.task
		case Event:
			h = s.event
		}
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: string(m.Desc.Name()), Handler: s.unary(m, h)})
	}
	r.RegisterService(desc, s)
}

// unary is the grpc.MethodHandler of a unary route.
func (s *Service) unary(m Method, h func(context.Context, Method, *frame.Frame) (*frame.Frame, error)) grpc.MethodHandler {
	info := &grpc.UnaryServerInfo{Server: s, FullMethod: m.FullMethod()}
	call := func(ctx context.Context, req any) (any, error) {
		if _, ok := ctx.Deadline(); !ok && m.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, m.Timeout)
			defer cancel()
		}
		in := req.(*frame.Frame)
		if err := m.check(in); err != nil {
			return nil, err
		}
		return h(ctx, m, in)
	}
	return func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(frame.Frame)
		if err := dec(in); err != nil {
			return nil, err
		}
		if interceptor == nil {
			return call(ctx, in)
		}
		return interceptor(ctx, in, info, call)
	}
}

// rpc sends a request to m's queue and returns the worker's reply.
func (s *Service) rpc(ctx context.Context, m Method, in *frame.Frame) (*frame.Frame, error) {
	req, err := s.request(ctx, m, in)
	if err != nil {
		return nil, err
	}
	d, err := s.client.Call(ctx, m.Queue, req)
	if err != nil {
		return nil, err
	}
	pb, err := reply(m, &d)
	if err != nil {
		return nil, err
	}
	return &frame.Frame{Data: pb}, nil
}

// check refuses a request the gateway must not pass on, as
// INVALID_ARGUMENT, before anything is published: bytes that are not
// protobuf's wire format for every route; for a task or an event, which
// have no worker's reply to say what was wrong, anything that does not
// decode as the request type (invalid UTF-8 in a string field, say).
func (m Method) check(in *frame.Frame) error {
	if m.Pattern == Task || m.Pattern == Event {
		_, err := m.decode(in)
		return err
	}
	if err := wellFormed(in.Data); err != nil {
		return core.Argumentf("the request is not a %s: %v", m.Desc.Input().FullName(), err)
	}
	return nil
}

// decode decodes the request, for the fields a route needs.
func (m Method) decode(in *frame.Frame) (protoreflect.Message, error) {
	req := dynamicpb.NewMessage(m.Desc.Input())
	if err := proto.Unmarshal(in.Data, req); err != nil {
		return nil, core.Argumentf("the request is not a %s: %v", m.Desc.Input().FullName(), err)
	}
	return req, nil
}

// UseIncomingMetadata tells s that its gateway puts each call's
// forwarded metadata in the call's context, uncopied
// (gateway.MetadataReader). gateway.New calls it before Register.
func (s *Service) UseIncomingMetadata() { s.tapped = true }

// request is the publishing of a call's request: its bytes as they came,
// its type, and the caller's metadata.
func (s *Service) request(ctx context.Context, m Method, in *frame.Frame) (amqp.Publishing, error) {
	body, err := m.Codec.toBody(m.Desc.Input(), in.Data)
	if err != nil {
		return amqp.Publishing{}, core.Argumentf("the request is not a %s: %v", m.Desc.Input().FullName(), err)
	}
	headers := amqp.Table{}
	var md metadata.MD
	if s.tapped {
		md = wire.Incoming(ctx)
	} else {
		md, _ = metadata.FromIncomingContext(ctx)
	}
	wire.SetMetadata(headers, md)
	return amqp.Publishing{
		ContentType: m.Codec.ContentType(),
		Type:        string(m.Desc.Input().FullName()),
		Headers:     headers,
		Body:        body,
	}, nil
}

// task publishes the request persistent to m's work queue and answers,
// once the broker confirmed it, with the task's id.
func (s *Service) task(ctx context.Context, m Method, in *frame.Frame) (*frame.Frame, error) {
	id, err := newTaskID()
	if err != nil {
		return nil, err
	}
	req, err := s.request(ctx, m, in)
	if err != nil {
		return nil, err
	}
	msg := &core.Message{RoutingKey: m.Queue, Mandatory: true, Publishing: req}
	msg.DeliveryMode = amqp.Persistent
	msg.MessageId = id
	msg.Timestamp = time.Now()
	core.NoteCall(ctx, core.NoteTaskID, id)
	if err := s.publisher.Publish(ctx, msg); err != nil {
		return nil, err
	}
	// The response: its id field alone, in protobuf's encoding.
	b := protowire.AppendTag(nil, m.IDField.Number(), protowire.BytesType)
	return &frame.Frame{Data: protowire.AppendString(b, id)}, nil
}

func newTaskID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// event publishes the request persistent to m's exchange with the routing
// key its template makes, and answers, once the broker confirmed it, with
// the response type's empty message.
func (s *Service) event(ctx context.Context, m Method, in *frame.Frame) (*frame.Frame, error) {
	key := m.key.src
	if m.key.fields() {
		req, err := m.decode(in)
		if err != nil {
			return nil, err
		}
		key = m.key.render(req)
	}
	if len(key) > core.MaxKeyLen {
		return nil, core.Argumentf("routing key of %d bytes from %q: the broker takes at most %d", len(key), m.key.src, core.MaxKeyLen)
	}
	req, err := s.request(ctx, m, in)
	if err != nil {
		return nil, err
	}
	msg := &core.Message{Exchange: m.Exchange, RoutingKey: key, Publishing: req}
	msg.DeliveryMode = amqp.Persistent
	msg.Timestamp = time.Now()
	if err := s.publisher.Publish(ctx, msg); err != nil {
		return nil, err
	}
	return &frame.Frame{}, nil
}

// reply returns the protobuf encoding of a worker's reply (one message of
// a stream), refusing, as INTERNAL, one that cannot be m's response
// (checkMessage).
func reply(m Method, d *amqp.Delivery) ([]byte, error) {
	pb, err := checkMessage(m, m.Desc.Output(), d)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "route: the worker's reply: %v", err)
	}
	return pb, nil
}

// checkMessage returns the protobuf encoding of the message of type want
// that d carries in m's codec, or why it cannot carry one: another type,
// another content type, or a body that is not such a message (a protobuf
// body is checked for protobuf's wire format, not decoded).
func checkMessage(m Method, want protoreflect.MessageDescriptor, d *amqp.Delivery) ([]byte, error) {
	if d.Type != "" && d.Type != string(want.FullName()) {
		return nil, fmt.Errorf("a %q, want a %s", truncate(d.Type), want.FullName())
	}
	if ct := m.Codec.ContentType(); d.ContentType != "" && d.ContentType != ct {
		return nil, fmt.Errorf("content type %q, want %s", truncate(d.ContentType), ct)
	}
	return m.Codec.fromBody(want, d.Body)
}

// truncate keeps what a foreign worker sent short in an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
