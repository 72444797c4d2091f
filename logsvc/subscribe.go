package logsvc

import (
	"errors"
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
// subscription is bound: from then on it receives every message routed to
// its keys. Its value is the gateway's queue for the exchange, which all
// of the exchange's subscriptions share (its history stream, with
// Config.History). A client that must not miss
// messages emitted right after it subscribed waits for the header
// (stream.Header()).
const QueueHeader = wire.HeaderQueue

// SubscribeLogs subscribes on the exchange's core.Mux: the gateway's one
// queue for the exchange is bound with the request's keys (those no other
// subscription holds yet), and every message routed to the queue whose
// routing key one of them matches is streamed, until the client cancels,
// its backlog in the gateway overflows (core.ErrOverflow), the broker
// connection is lost or the gateway shuts down. When it returns, the keys
// no other subscription holds are unbound. A subscription that found its
// exchange deleted declares the exchanges again and subscribes once more.
// A request with a start subscribes from that point in the exchange's
// history (core.Mux.SubscribeFrom); every message then carries its offset,
// as every message does while the gateway keeps a history.
//
// The gateway serves it through subscribeLogsHandler (handler.go), which
// runs subscribe on a goroutine of its own and only the wait for
// deliveries on gRPC's; this is the same call in one piece.
func (s *Service) SubscribeLogs(req *warrenv1.SubscribeLogsRequest, stream grpc.ServerStreamingServer[warrenv1.SubscribeLogsResponse]) error {
	sub, err := s.subscribe(req, stream)
	if err != nil {
		return err
	}
	return streamLogs(sub, stream)
}

// subscribe is SubscribeLogs up to the response header: the subscription
// is bound once it returns.
func (s *Service) subscribe(req *warrenv1.SubscribeLogsRequest, stream grpc.ServerStreamingServer[warrenv1.SubscribeLogsResponse]) (*core.MuxSubscription, error) {
	ex, err := s.cfg.exchange(req.GetExchange())
	if err != nil {
		return nil, err
	}
	keys, err := s.cfg.bindingKeys(ex, req.GetBindingKeys())
	if err != nil {
		return nil, err
	}
	start, err := startOf(req)
	if err != nil {
		return nil, err
	}
	mux := s.mux[ex.name]
	ctx := stream.Context()
	subscribe := func() (*core.MuxSubscription, error) {
		if start == nil {
			return mux.Subscribe(ctx, keys)
		}
		return mux.SubscribeFrom(ctx, keys, *start)
	}
	gen := s.ex.generation()
	sub, err := subscribe()
	if err != nil && s.ex.repair(ex, gen, err) {
		sub, err = subscribe()
	}
	if err != nil {
		if errors.Is(err, core.ErrHistoryOff) {
			return nil, fmt.Errorf("subscribe to %q from its history: %w: this gateway runs without --log-history", ex.name, err)
		}
		return nil, fmt.Errorf("subscribe to %q: %w", ex.name, err)
	}
	if err := stream.SendHeader(metadata.Pairs(QueueHeader, sub.Queue())); err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

// streamLogs streams sub's deliveries until it ends (MuxSubscription.Stream).
func streamLogs(sub *core.MuxSubscription, stream grpc.ServerStreamingServer[warrenv1.SubscribeLogsResponse]) error {
	return sub.Stream(func(d *amqp.Delivery) error { return stream.Send(response(d)) })
}

// startOf is the request's starting point in the history, or nil.
func startOf(req *warrenv1.SubscribeLogsRequest) (*core.StreamStart, error) {
	var s core.StreamStart
	switch start := req.GetStart().(type) {
	case nil:
		return nil, nil
	case *warrenv1.SubscribeLogsRequest_StartAt:
		switch start.StartAt {
		case warrenv1.HistoryStart_HISTORY_START_FIRST:
			s = core.StartFirst()
		case warrenv1.HistoryStart_HISTORY_START_LAST:
			s = core.StartLast()
		default:
			return nil, core.Argumentf("start_at %v is not a starting point: use HISTORY_START_FIRST or HISTORY_START_LAST", start.StartAt)
		}
	case *warrenv1.SubscribeLogsRequest_StartOffset:
		if start.StartOffset < 0 {
			return nil, core.Argumentf("start_offset %d is negative: offsets start at 0", start.StartOffset)
		}
		s = core.StartOffset(start.StartOffset)
	case *warrenv1.SubscribeLogsRequest_StartTime:
		if err := start.StartTime.CheckValid(); err != nil {
			return nil, core.Argumentf("start_time: %v", err)
		}
		s = core.StartTime(start.StartTime.AsTime())
	}
	return &s, nil
}

// response converts a delivery into a stream message: the body as text
// when it is UTF-8, as raw bytes otherwise, the publishing's timestamp, or
// the time of delivery when it has none, and the offset when it came from
// a history stream.
func response(d *amqp.Delivery) *warrenv1.SubscribeLogsResponse {
	m := &warrenv1.SubscribeLogsResponse{RoutingKey: d.RoutingKey}
	if off, ok := core.StreamOffset(d); ok {
		m.Offset = &off
	}
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
