package logsvc

import (
	"fmt"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/wire"
)

// QueueHeader is the response header SubscribeLogs sends once the
// subscription's queue is declared, bound and consumed from. Its value is
// the server-named queue. A client that must not miss messages emitted
// right after it subscribed waits for the header (stream.Header()).
const QueueHeader = wire.HeaderQueue

// SubscribeLogs subscribes with a queue of its own (exclusive,
// auto-delete, server-named, at most cfg.MaxLength messages) bound to the
// exchange with the request's keys, sends the QueueHeader, and streams
// every message routed to the queue until the client cancels, the queue
// overflows (core.ErrOverflow), the broker connection is lost or the
// gateway shuts down. When it returns, the consumer and the queue are gone
// from the broker. A subscription that found its exchange deleted declares
// the exchanges again and subscribes once more.
func (s *Service) SubscribeLogs(req *warrenv1.SubscribeLogsRequest, stream grpc.ServerStreamingServer[warrenv1.SubscribeLogsResponse]) error {
	ex, err := s.cfg.exchange(req.GetExchange())
	if err != nil {
		return err
	}
	keys, err := s.cfg.bindingKeys(ex, req.GetBindingKeys())
	if err != nil {
		return err
	}
	cfg := core.SubscriptionConfig{
		Queue:         core.QueueSpec{}, // server-named, deleted at the end
		Bindings:      make([]core.Binding, len(keys)),
		Prefetch:      s.cfg.Prefetch,
		MaxLength:     s.cfg.MaxLength,
		Overflow:      s.cfg.Overflow,
		OverflowCheck: s.cfg.OverflowCheck,
	}
	for i, k := range keys {
		cfg.Bindings[i] = core.Binding{Exchange: ex.name, Key: k}
	}
	ctx := stream.Context()
	gen := s.ex.generation()
	sub, err := s.subs.Subscribe(ctx, cfg)
	if err != nil && s.ex.repair(ex, gen, err) {
		sub, err = s.subs.Subscribe(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("subscribe to %q: %w", ex.name, err)
	}
	if err := stream.SendHeader(metadata.Pairs(QueueHeader, sub.Queue())); err != nil {
		sub.Close()
		return err
	}
	return sub.Stream(func(d *amqp.Delivery) error { return stream.Send(response(d)) })
}

// response converts a delivery into a stream message: the body as text
// when it is UTF-8, as raw bytes otherwise, and the publishing's
// timestamp, or the time of delivery when it has none.
func response(d *amqp.Delivery) *warrenv1.SubscribeLogsResponse {
	m := &warrenv1.SubscribeLogsResponse{RoutingKey: d.RoutingKey}
	if utf8.Valid(d.Body) {
		m.Body = string(d.Body)
	} else {
		m.RawBody = d.Body
	}
	t := d.Timestamp
	if t.IsZero() {
		t = time.Now()
	}
	m.Time = timestamppb.New(t)
	return m
}
