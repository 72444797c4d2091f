package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
)

// QueueDefault is the queue of the Hello World tutorial (send.py and
// receive.py), used when a request names none.
const QueueDefault = "hola"

// queueMaxNameLen is AMQP's limit on a queue name (a shortstr). A longer
// name must never reach amqp091-go: it fails to encode the frame and closes
// the whole connection, failing every other call on it.
const queueMaxNameLen = 255

// queueCheckName rejects a queue name the broker could not take.
func queueCheckName(queue string) error {
	if len(queue) > queueMaxNameLen {
		return status.Errorf(codes.InvalidArgument, "gateway: queue name is %d bytes, more than %d", len(queue), queueMaxNameLen)
	}
	return nil
}

// Errors of the queue and task services before they become gRPC statuses.
var (
	// errQueueNotConnected means the service holds no broker connection.
	errQueueNotConnected = errors.New("gateway: not connected to the broker")
	// errQueueNotConfirmed means the broker nacked a publishing, or its
	// channel closed before the confirm arrived.
	errQueueNotConfirmed = errors.New("gateway: publishing not confirmed by the broker")
	// errQueueShutdown means the service is shutting down.
	errQueueShutdown = errors.New("gateway: shutting down")
)

// QueueReturnError is a publishing the broker returned because no queue
// took it (basic.return of a mandatory publishing).
type QueueReturnError struct {
	Exchange   string
	RoutingKey string
	Code       uint16
	Text       string
}

func (e *QueueReturnError) Error() string {
	return fmt.Sprintf("gateway: publishing to exchange %q with routing key %q returned by the broker: %d %s",
		e.Exchange, e.RoutingKey, e.Code, e.Text)
}

// queueStatus maps an error of the queue and task services to a gRPC status,
// once, at the boundary: context errors keep their meaning, a broker's 403
// (such as a reserved "amq." queue name) is PERMISSION_DENIED, a 404 is
// NOT_FOUND, and everything about the broker not taking a message is
// UNAVAILABLE.
func queueStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var aerr *amqp.Error
	switch {
	case errors.As(err, &aerr) && aerr.Code == amqp.AccessRefused:
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// QueueConfig configures a QueueService. The zero value works.
type QueueConfig struct {
	// Prefetch is the prefetch count (basic.qos) of each Receive stream:
	// how many messages the broker hands a stream before it acknowledged
	// them. Default: 1, so competing streams share a queue fairly.
	Prefetch int
	// ConfirmChannels is the number of confirm-mode channels Send
	// publishes on; concurrent sends pipeline on each. Default: 2.
	ConfirmChannels int
	// Logger receives warnings. Default: slog.Default().
	Logger *slog.Logger
}

func (c QueueConfig) withDefaults() QueueConfig {
	if c.Prefetch <= 0 {
		c.Prefetch = 1
	}
	if c.ConfirmChannels <= 0 {
		c.ConfirmChannels = 2
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// QueueService implements warren.v1.QueueService, the Hello World tutorial:
// Send publishes to a named queue, Receive consumes one as a stream. It is
// an amqpx.Handler; register it with the Supervisor that owns the
// connection. Its methods are safe for concurrent use.
type QueueService struct {
	warrenv1.UnimplementedQueueServiceServer

	cfg      QueueConfig
	shutdown chan struct{}
	once     sync.Once

	mu       sync.Mutex
	conn     *amqp.Connection
	pool     *queueConfirmPool
	declared map[string]bool // queues declared on conn

	blocked atomic.Bool // the broker blocks publishing (resource alarm)
}

// Blocked makes Send fail fast with RESOURCE_EXHAUSTED while the broker
// blocks publishing (amqpx.BlockedHandler).
func (s *QueueService) Blocked(active bool, _ string) { s.blocked.Store(active) }

// NewQueueService returns a QueueService; it serves once its Supervisor
// connected it.
func NewQueueService(cfg QueueConfig) *QueueService {
	return &QueueService{cfg: cfg.withDefaults(), shutdown: make(chan struct{})}
}

// Connected implements amqpx.Handler.
func (s *QueueService) Connected(ctx context.Context, conn *amqp.Connection) error {
	pool := queueNewConfirmPool(conn, s.cfg.ConfirmChannels)
	s.mu.Lock()
	s.conn, s.pool, s.declared = conn, pool, map[string]bool{}
	s.mu.Unlock()
	return nil
}

// Disconnected implements amqpx.Handler. Receive streams end by themselves
// with UNAVAILABLE when their channel closes with the connection.
func (s *QueueService) Disconnected(error) {
	s.mu.Lock()
	pool := s.pool
	s.conn, s.pool, s.declared = nil, nil, nil
	s.mu.Unlock()
	if pool != nil {
		pool.close()
	}
}

// Shutdown ends every Receive stream with UNAVAILABLE and makes new calls
// fail; call it before grpc.Server.GracefulStop, which waits for streams.
// It is idempotent.
func (s *QueueService) Shutdown() {
	s.once.Do(func() { close(s.shutdown) })
}

// declare declares queue as the tutorial does (plain: not durable, not
// exclusive, no auto-delete), once per connection, and returns the
// connection and publisher pool to use.
func (s *QueueService) declare(queue string) (*amqp.Connection, *queueConfirmPool, error) {
	select {
	case <-s.shutdown:
		return nil, nil, errQueueShutdown
	default:
	}
	s.mu.Lock()
	conn, pool, done := s.conn, s.pool, s.declared[queue]
	s.mu.Unlock()
	if conn == nil {
		return nil, nil, errQueueNotConnected
	}
	if done {
		return conn, pool, nil
	}
	if _, err := amqpx.DeclareQueue(conn, amqpx.QueueSpec{Name: queue}, s.cfg.Logger); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if s.conn == conn {
		s.declared[queue] = true
	}
	s.mu.Unlock()
	return conn, pool, nil
}

// Send implements warren.v1.QueueService.
func (s *QueueService) Send(ctx context.Context, req *warrenv1.SendRequest) (*warrenv1.SendResponse, error) {
	queue := req.GetQueue()
	if queue == "" {
		queue = QueueDefault
	}
	if err := queueCheckName(queue); err != nil {
		return nil, err
	}
	if s.blocked.Load() {
		return nil, errBlockedStatus
	}
	_, pool, err := s.declare(queue)
	if err != nil {
		return nil, queueStatus(err)
	}
	id := queueNewID()
	err = pool.publish(ctx, "", queue, amqp.Publishing{
		ContentType: "text/plain",
		MessageId:   id,
		Body:        []byte(req.GetBody()),
	})
	if err != nil {
		return nil, queueStatus(err)
	}
	return &warrenv1.SendResponse{MessageId: id}, nil
}

// Receive implements warren.v1.QueueService. The calling goroutine is the
// only one that calls stream.Send; deliveries reach it through the channel
// amqp091-go fills, bounded by the prefetch count. A delivery is
// acknowledged after stream.Send returned nil; when the stream ends first
// the channel closes and the broker requeues what was not acknowledged.
func (s *QueueService) Receive(req *warrenv1.ReceiveRequest, stream grpc.ServerStreamingServer[warrenv1.ReceiveResponse]) error {
	queue := req.GetQueue()
	if queue == "" {
		queue = QueueDefault
	}
	if err := queueCheckName(queue); err != nil {
		return err
	}
	conn, _, err := s.declare(queue)
	if err != nil {
		return queueStatus(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return queueStatus(fmt.Errorf("open channel: %w", err))
	}
	defer ch.Close()
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return queueStatus(fmt.Errorf("set prefetch: %w", err))
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return queueStatus(fmt.Errorf("consume %q: %w", queue, err))
	}
	// Tell the client the consumer is in place.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.shutdown:
			return status.Error(codes.Unavailable, errQueueShutdown.Error())
		case d, ok := <-deliveries:
			if !ok {
				return status.Errorf(codes.Unavailable, "gateway: consumer of queue %q ended (broker connection or channel closed)", queue)
			}
			resp := &warrenv1.ReceiveResponse{MessageId: d.MessageId, Redelivered: d.Redelivered}
			if utf8.Valid(d.Body) {
				resp.Body = string(d.Body)
			} else {
				resp.RawBody = d.Body
			}
			if err := stream.Send(resp); err != nil {
				return err // not acknowledged: requeued when ch closes
			}
			if err := d.Ack(false); err != nil {
				return status.Errorf(codes.Unavailable, "gateway: ack: %v", err)
			}
		}
	}
}

// queueNewID returns a random message id.
func queueNewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// queueConfirmPool publishes on a few confirm-mode channels of one
// connection. Any number of goroutines may publish at once: a publisher
// takes a channel round-robin (the pool's lock is held only to pick it), so
// publishings pipeline on every channel and each caller waits only for its
// own confirm. A channel that closed (a 404 or 406 kills it) is replaced by
// the next publisher to pick it.
type queueConfirmPool struct {
	conn *amqp.Connection
	next atomic.Uint64
	wg   sync.WaitGroup // return watchers

	mu     sync.Mutex
	pubs   []*queuePublisher
	closed bool
}

func queueNewConfirmPool(conn *amqp.Connection, n int) *queueConfirmPool {
	return &queueConfirmPool{conn: conn, pubs: make([]*queuePublisher, n)}
}

// close stops the return watchers and waits for them. The channels close
// with the connection.
func (p *queueConfirmPool) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, pub := range p.pubs {
			if pub != nil {
				close(pub.stop)
			}
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// get returns an open publisher, opening one if needed.
func (p *queueConfirmPool) get() (*queuePublisher, error) {
	i := int(p.next.Add(1) % uint64(len(p.pubs)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errQueueNotConnected
	}
	if pub := p.pubs[i]; pub != nil {
		if !pub.ch.IsClosed() {
			return pub, nil
		}
		close(pub.stop)
		p.pubs[i] = nil
	}
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enter confirm mode: %w", err)
	}
	pub := &queuePublisher{
		ch:      ch,
		returns: ch.NotifyReturn(make(chan amqp.Return, 64)),
		queries: make(chan queueReturnQuery),
		stop:    make(chan struct{}),
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pub.watch()
	}()
	p.pubs[i] = pub
	return pub, nil
}

// publish publishes msg as mandatory and returns nil only once the broker
// confirmed it and did not return it.
func (p *queueConfirmPool) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	pub, err := p.get()
	if err != nil {
		return err
	}
	dc, err := pub.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	ack, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ack {
		return errQueueNotConfirmed
	}
	ret, err := pub.returned(msg.MessageId)
	if err != nil {
		return err
	}
	if ret != nil {
		return &QueueReturnError{Exchange: ret.Exchange, RoutingKey: ret.RoutingKey, Code: ret.ReplyCode, Text: ret.ReplyText}
	}
	return nil
}

// queuePublisher is one confirm-mode channel and the goroutine that drains
// its returns.
//
// The broker sends basic.return before the basic.ack of the same
// publishing, and amqp091-go hands the return to the returns channel before
// it resolves the confirmation. So once a publisher saw its ack, its return
// (if any) is either in the returns buffer or already recorded by watch;
// watch answers a query only after draining the buffer, which makes the
// answer exact.
type queuePublisher struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	queries chan queueReturnQuery
	stop    chan struct{}
}

type queueReturnQuery struct {
	messageID string
	reply     chan *amqp.Return // buffered 1
}

// watch owns the record of returned publishings, keyed by message id.
// (Two concurrent publishings with one id go to the same place, so either
// both or neither are returned.)
func (pub *queuePublisher) watch() {
	returned := map[string][]amqp.Return{}
	returns := pub.returns
	record := func(r amqp.Return) { returned[r.MessageId] = append(returned[r.MessageId], r) }
	for {
		select {
		case <-pub.stop:
			return
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			record(r)
		case q := <-pub.queries:
		drain:
			for returns != nil {
				select {
				case r, ok := <-returns:
					if !ok {
						returns = nil
						break drain
					}
					record(r)
				default:
					break drain
				}
			}
			var ret *amqp.Return
			if rs := returned[q.messageID]; len(rs) > 0 {
				ret = &rs[0]
				if len(rs) == 1 {
					delete(returned, q.messageID)
				} else {
					returned[q.messageID] = rs[1:]
				}
			}
			q.reply <- ret
		}
	}
}

// returned reports the return of a confirmed publishing, or nil.
func (pub *queuePublisher) returned(messageID string) (*amqp.Return, error) {
	q := queueReturnQuery{messageID: messageID, reply: make(chan *amqp.Return, 1)}
	select {
	case pub.queries <- q:
		return <-q.reply, nil
	case <-pub.stop:
		// Cannot tell whether it was returned; do not claim success.
		return nil, errQueueNotConnected
	}
}
