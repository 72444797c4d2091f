package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/frame"
	"github.com/warrenrpc/warren/internal/grpcstream"
	"github.com/warrenrpc/warren/internal/wire"
)

// stream is the grpc.StreamHandler of a subscribe or stream route.
func (s *Service) stream(m Method) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		if m.Pattern == Subscribe {
			return s.subscribe(m, stream)
		}
		in := new(frame.Frame)
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		if err := m.check(in); err != nil {
			return err
		}
		return s.relay(m, in, stream)
	}
}

// relay sends the request to m's queue and relays the worker's replies,
// in order, until the one that ends the stream: the call ends with its
// status. A reply that cannot be the response type ends the call with
// INTERNAL, as for an RPC: a stream must not silently lose a message.
func (s *Service) relay(m Method, in *frame.Frame, stream grpc.ServerStream) error {
	ctx := stream.Context()
	if _, ok := ctx.Deadline(); !ok && m.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.Timeout)
		defer cancel()
	}
	req, err := s.request(ctx, m, in)
	if err != nil {
		return err
	}
	replies, err := s.client.CallStream(ctx, m.Queue, req)
	if err != nil {
		return err
	}
	defer replies.Close()
	for {
		d, err := replies.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		pb, err := reply(m, &d)
		if err != nil {
			return err
		}
		if err := stream.SendMsg(&frame.Frame{Data: pb}); err != nil {
			return err
		}
	}
}

// subscribe subscribes on the core.Mux of m's exchange with the request's
// keys (the gateway's one queue for the exchange is bound with those no
// other subscription holds), sends the wire.HeaderQueue response header,
// and streams every message whose routing key one of them matches until
// the client cancels, its backlog in the gateway overflows (MaxLength),
// the connection is lost or the gateway shuts down. A message that cannot be
// a response (another type, another content type, or not protobuf's wire
// format: a foreign publisher's) is skipped and logged; it does not end
// the stream.
//
// As logsvc's SubscribeLogs, it keeps gRPC's goroutine for the call
// shallow while the stream idles, so that its stack stays at 4 KiB: the
// request, the subscribe and the header run on a short-lived goroutine
// (grpcstream.Offload), and the messages are sent by a grpcstream.Sender.
func (s *Service) subscribe(m Method, stream grpc.ServerStream) error {
	var sub *core.MuxSubscription
	err := grpcstream.Offload(func() error {
		in := new(frame.Frame)
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		if err := m.check(in); err != nil {
			return err
		}
		var err error
		sub, err = s.bind(m, in, stream)
		return err
	})
	if err != nil {
		return err
	}
	snd := grpcstream.NewSender(stream, sub.Close)
	err = sub.Stream(func(d *amqp.Delivery) error {
		pb, err := checkMessage(m, m.Desc.Output(), d)
		if err != nil {
			s.cfg.Logger.Warn("route: a message that is not the subscription's response skipped",
				"method", m.FullMethod(), "exchange", m.Exchange, "routing_key", d.RoutingKey, "err", err)
			return nil
		}
		if off, ok := core.StreamOffset(d); ok && m.OffsetField != nil {
			pb = withOffset(pb, m.OffsetField, off)
		}
		return snd.Send(&frame.Frame{Data: pb})
	})
	if serr := snd.Wait(); serr != nil {
		return serr
	}
	return err
}

// bind is subscribe up to the response header: the subscription is bound
// (or reads the history from its start) once it returns.
func (s *Service) bind(m Method, in *frame.Frame, stream grpc.ServerStream) (*core.MuxSubscription, error) {
	var keys []string
	var start *core.StreamStart
	if m.KeysField != nil || m.StartOffsetField != nil || m.StartTimeField != nil {
		req, err := m.decode(in)
		if err != nil {
			return nil, err
		}
		if m.KeysField != nil {
			keys = stringValues(req, m.KeysField)
		}
		if start, err = startOf(m, req); err != nil {
			return nil, err
		}
	}
	keys, err := core.BindingKeys(m.Kind, keys, s.cfg.MaxBindingKeys)
	if err != nil {
		return nil, err
	}
	mux := s.mux[m.Exchange]
	var sub *core.MuxSubscription
	if start != nil {
		sub, err = mux.SubscribeFrom(stream.Context(), keys, *start)
	} else {
		sub, err = mux.Subscribe(stream.Context(), keys)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe to %q: %w", m.Exchange, err)
	}
	if err := stream.SendHeader(metadata.Pairs(wire.HeaderQueue, sub.Queue())); err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

// startOf is where a call starts in the history: the request's start
// offset or time, or nil for the live messages only.
func startOf(m Method, req protoreflect.Message) (*core.StreamStart, error) {
	var start *core.StreamStart
	if fd := m.StartOffsetField; fd != nil && req.Has(fd) {
		s := core.StartOffset(req.Get(fd).Int())
		if req.Get(fd).Int() < 0 {
			return nil, core.Argumentf("%s %d is negative: offsets start at 0", fd.Name(), req.Get(fd).Int())
		}
		start = &s
	}
	if fd := m.StartTimeField; fd != nil && req.Has(fd) {
		if start != nil {
			return nil, core.Argumentf("%s and %s are both set: give one starting point", m.StartOffsetField.Name(), fd.Name())
		}
		ts := req.Get(fd).Message()
		secs := ts.Get(ts.Descriptor().Fields().ByName("seconds")).Int()
		nanos := ts.Get(ts.Descriptor().Fields().ByName("nanos")).Int()
		if nanos < 0 || nanos >= 1e9 {
			return nil, core.Argumentf("%s has nanos %d: want 0 to 999,999,999", fd.Name(), nanos)
		}
		s := core.StartTime(time.Unix(secs, nanos))
		start = &s
	}
	return start, nil
}

// withOffset returns the message pb with field fd set to off: a field
// appended to protobuf's encoding replaces an earlier one, so the
// message needs no decode. pb is not changed (it may be the delivery's).
func withOffset(pb []byte, fd protoreflect.FieldDescriptor, off int64) []byte {
	out := make([]byte, 0, len(pb)+protowire.SizeTag(fd.Number())+protowire.SizeVarint(uint64(off)))
	out = append(out, pb...)
	out = protowire.AppendTag(out, fd.Number(), protowire.VarintType)
	return protowire.AppendVarint(out, uint64(off))
}

// stringValues returns the value of the string field fd of m, or its
// values if it is repeated.
func stringValues(m protoreflect.Message, fd protoreflect.FieldDescriptor) []string {
	if !fd.IsList() {
		if v := m.Get(fd).String(); v != "" || m.Has(fd) {
			return []string{v}
		}
		return nil
	}
	list := m.Get(fd).List()
	out := make([]string, list.Len())
	for i := range list.Len() {
		out[i] = list.Get(i).String()
	}
	return out
}
