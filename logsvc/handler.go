package logsvc

import (
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/frame"
	"github.com/warrenrpc/warren/internal/grpcstream"
)

// Why SubscribeLogs has a handler of its own.
//
// An idle subscription costs the gateway one goroutine, gRPC's handler
// goroutine, parked in MuxSubscription.Stream, and its stack is most of
// that cost. The runtime sizes a goroutine's stack in powers of two: it
// grows to 8 KiB as soon as the deepest call made on it needs more than
// about 3 KiB (4 KiB less the stack guard), and the garbage collector
// halves it again only when less than a quarter of it is in use, which
// gRPC's own frames under the handler (about 1.3 KiB, plus the runtime's
// 800 bytes of reserve) already exceed. So the stack stays at 4 KiB only
// if nothing deep ever runs on the handler goroutine; and new goroutines
// start at the average stack use the collector saw (plus the guard), so
// the handlers' depth while parked must stay under about 3 KiB too.
//
// Measured with BenchmarkIdleStreams (RSS per stream, 10,000 streams):
// 14.2 KiB as generated; 14.1 with everything but the request's decoding
// (RecvMsg, in the generated handler) moved off the handler goroutine;
// 14.3 with the decoding, the header and the sends moved off but the
// subscribe (Mux.Subscribe) left on it, also with the runtime's adaptive
// starting stack size off (GODEBUG=adaptivestackstart=0), so the
// subscribe's own depth grows it; 10.4 with all of it moved off. So
// subscribeLogsHandler receives the request, subscribes and sends the
// header on a short-lived goroutine (grpcstream.Offload), sends the messages from a
// goroutine that runs only while there are messages to send (grpcstream.Sender), and
// keeps on gRPC's goroutine only the wait for deliveries in Stream. The
// price is a goroutine start per burst of messages, and a handoff per
// message; and a traced delivery's span (MuxSubscription) now covers the
// handoff, not gRPC's send.

// serviceDesc is LogService's grpc.ServiceDesc as generated, with
// subscribeLogsHandler as SubscribeLogs's handler, which needs the
// gateway's server codec (frame.Codec, which gateway.New installs).
func serviceDesc() *grpc.ServiceDesc {
	desc := warrenv1.LogService_ServiceDesc
	desc.Streams = append([]grpc.StreamDesc(nil), desc.Streams...)
	found := false
	for i := range desc.Streams {
		if desc.Streams[i].StreamName == "SubscribeLogs" {
			desc.Streams[i].Handler = subscribeLogsHandler
			found = true
		}
	}
	if !found {
		panic("logsvc: LogService has no SubscribeLogs stream")
	}
	return &desc
}

// subscribeLogsHandler serves SubscribeLogs as the generated handler does,
// with the request's decoding and everything up to the response header
// (Service.subscribe) on a goroutine of its own, and the messages sent by
// a sender's goroutine: gRPC's goroutine for the call only waits for
// deliveries.
func subscribeLogsHandler(srv any, ss grpc.ServerStream) error {
	s := srv.(*Service)
	var sub *core.MuxSubscription
	err := grpcstream.Offload(func() error {
		// The request as it came (the gateway's codec, frame.Codec, hands
		// a Frame the bytes), decoded here: gRPC answers a request it
		// cannot decode itself, with INTERNAL, whatever the handler says.
		var raw frame.Frame
		if err := ss.RecvMsg(&raw); err != nil {
			return err
		}
		req := new(warrenv1.SubscribeLogsRequest)
		if err := proto.Unmarshal(raw.Data, req); err != nil {
			return requestError(err)
		}
		var err error
		sub, err = s.subscribe(req, &grpc.GenericServerStream[warrenv1.SubscribeLogsRequest, warrenv1.SubscribeLogsResponse]{ServerStream: ss})
		return err
	})
	if err != nil {
		return err
	}
	snd := grpcstream.NewSender(ss, sub.Close)
	err = sub.Stream(func(d *amqp.Delivery) error { return snd.Send(response(d)) })
	if serr := snd.Wait(); serr != nil {
		return serr
	}
	return err
}

// requestError is INVALID_ARGUMENT for a request that does not decode:
// the client sent it. The request's one string field is the binding keys,
// so a string that is not UTF-8 is a binding key.
func requestError(err error) error {
	if strings.Contains(err.Error(), "invalid UTF-8") {
		return core.Argumentf("a binding key is not valid UTF-8 (%v)", err)
	}
	return core.Argumentf("the request cannot be decoded (%v)", err)
}
