package queuesvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// DefaultQueue is the queue of the Hello World tutorial (send.py and
// receive.py), used when a request names none.
const DefaultQueue = "hola"

// maxNameLen is AMQP's limit on a queue name (a shortstr). A longer name
// must never reach amqp091-go: it fails to encode the frame and closes the
// whole connection, failing every other call on it.
const maxNameLen = 255

// Config configures a Service. The zero value works.
type Config struct {
	// Prefetch is the prefetch count (basic.qos) of each Receive stream:
	// how many messages the broker hands a stream before it acknowledged
	// them. Default: 1, so competing streams share a queue fairly.
	Prefetch int
	// DefaultTimeout bounds the wait for the broker's confirm of a Send
	// that has no gRPC deadline. Default: 10s.
	DefaultTimeout time.Duration
	// QueueType is the type Send and Receive declare a queue with: quorum
	// (durable, as today's official tutorial declares its hello queue) or
	// core.QueueClassic (not durable, as the older tutorial and the seed's
	// send.py and receive.py declare it). Default (""): quorum. A queue
	// that exists with other properties is used as it is, with a warning.
	QueueType core.QueueType
	// Logger receives warnings. Default: slog.Default().
	Logger *slog.Logger
}

// Service implements warren.v1.QueueService, the Hello World tutorial:
// Send publishes to a named queue, Receive consumes one as a stream.
type Service struct {
	warrenv1.UnimplementedQueueServiceServer

	cfg  Config
	pub  *core.Publisher
	subs *core.Subscriber
	decl *declarer
}

// New returns a Service; it serves once a gateway attached it.
func New(cfg Config) *Service {
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg}
}

// Name implements gateway.Service.
func (s *Service) Name() string { return warrenv1.QueueService_ServiceDesc.ServiceName }

// Attach implements gateway.Service.
func (s *Service) Attach(sup *core.Supervisor) {
	sup.Known(DefaultQueue) // labels of the metrics; a queue a request names is _OTHER
	s.pub = core.NewPublisher(sup, core.PublisherConfig{Channels: 2, Timeout: s.cfg.DefaultTimeout})
	s.subs = core.NewSubscriber(sup)
	s.decl = &declarer{log: s.cfg.Logger, typ: s.cfg.QueueType}
	sup.Add(s.decl)
}

// Register implements gateway.Service.
func (s *Service) Register(r grpc.ServiceRegistrar) { warrenv1.RegisterQueueServiceServer(r, s) }

// queueName is the request's queue, checked.
func queueName(q string) (string, error) {
	if q == "" {
		q = DefaultQueue
	}
	if len(q) > maxNameLen {
		return "", core.Argumentf("queuesvc: queue name is %d bytes, more than %d", len(q), maxNameLen)
	}
	return q, nil
}

// spec is how the tutorial declares a queue: a durable quorum queue, as
// today's, or with typ core.QueueClassic a plain one (not durable, not
// exclusive, no auto-delete), as the older one. The queue is the
// caller's: Send and Receive declare it, as send.py and receive.py do,
// and it stays.
func spec(queue string, typ core.QueueType) core.QueueSpec {
	return core.QueueSpec{Name: queue, Type: typ}
}

// Send implements warren.v1.QueueService: it declares the queue as the
// tutorial does (once per connection), publishes the body as mandatory and
// answers after the broker's confirm.
func (s *Service) Send(ctx context.Context, req *warrenv1.SendRequest) (*warrenv1.SendResponse, error) {
	queue, err := queueName(req.GetQueue())
	if err != nil {
		return nil, err
	}
	// Fail fast: on a blocked connection the declaration would wait in the
	// broker until the alarm ends.
	if err := s.pub.Ready(); err != nil {
		return nil, err
	}
	if err := s.decl.declare(queue); err != nil {
		return nil, err
	}
	id := newID()
	err = s.pub.Publish(ctx, &core.Message{
		RoutingKey: queue,
		Mandatory:  true,
		Publishing: amqp.Publishing{ContentType: "text/plain", MessageId: id, Body: []byte(req.GetBody())},
	})
	if err != nil {
		return nil, err
	}
	return &warrenv1.SendResponse{MessageId: id}, nil
}

// Receive implements warren.v1.QueueService: it consumes the queue,
// competing with its other consumers, sends the response header once the
// consumer is in place, and acknowledges each message only after it was
// sent on the stream; what was not acknowledged when the stream ends goes
// back to the queue.
func (s *Service) Receive(req *warrenv1.ReceiveRequest, stream grpc.ServerStreamingServer[warrenv1.ReceiveResponse]) error {
	queue, err := queueName(req.GetQueue())
	if err != nil {
		return err
	}
	sub, err := s.subs.Subscribe(stream.Context(), core.SubscriptionConfig{Queue: spec(queue, s.cfg.QueueType), Prefetch: s.cfg.Prefetch})
	if err != nil {
		return err
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		sub.Close()
		return err
	}
	return sub.Stream(func(d *amqp.Delivery) error {
		resp := &warrenv1.ReceiveResponse{MessageId: d.MessageId, Redelivered: d.Redelivered}
		if utf8.Valid(d.Body) {
			resp.Body = string(d.Body)
		} else {
			resp.RawBody = d.Body
		}
		return stream.Send(resp)
	})
}

// declarer declares each queue Send names once per connection.
type declarer struct {
	log *slog.Logger
	typ core.QueueType

	mu       sync.Mutex
	conn     *core.Conn
	declared map[string]bool
}

func (d *declarer) Connected(_ context.Context, conn *core.Conn) error {
	d.mu.Lock()
	d.conn, d.declared = conn, map[string]bool{}
	d.mu.Unlock()
	return nil
}

func (d *declarer) Disconnected(error) {
	d.mu.Lock()
	d.conn, d.declared = nil, nil
	d.mu.Unlock()
}

func (d *declarer) declare(queue string) error {
	d.mu.Lock()
	conn, done := d.conn, d.declared[queue]
	d.mu.Unlock()
	if conn == nil {
		return core.ErrNotConnected
	}
	if done {
		return nil
	}
	if _, err := core.DeclareQueue(conn.Connection, spec(queue, d.typ), d.log); err != nil {
		return err
	}
	d.mu.Lock()
	if d.conn == conn {
		d.declared[queue] = true
	}
	d.mu.Unlock()
	return nil
}

// newID returns a random message id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
