package logsvc

import (
	"errors"
	"strings"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/frame"
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
// header on a short-lived goroutine (offload), sends the messages from a
// goroutine that runs only while there are messages to send (sender), and
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
	err := offload(func() error {
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
	snd := newSender(ss, sub.Close)
	err = sub.Stream(func(d *amqp.Delivery) error { return snd.send(response(d)) })
	if serr := snd.wait(); serr != nil {
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

// offload runs f on a new goroutine, so that the stack f needs is that
// goroutine's, and returns f's error once it returned.
func offload(f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return <-done
}

// senderQueue is how many messages a sender holds for its goroutine: the
// subscription's backlog in the gateway is its buffer's (MaxLength) and
// these.
const senderQueue = 32

// sender sends a stream's messages, in order, from a goroutine that runs
// while it has messages to send and ends when it has none: one goroutine
// start per burst of messages, none while the stream is idle. send waits
// while senderQueue messages wait already, so a slow client still fills
// the subscription's buffer (and overflows it) as before. The first
// error of SendMsg ends the subscription (stop) and is the stream's.
type sender struct {
	stream grpc.ServerStream
	stop   func()

	mu      sync.Mutex
	space   sync.Cond // signalled when the goroutine took a message or ended
	queue   []any
	running bool
	err     error // SendMsg's first error, or errSenderDone after wait
	wg      sync.WaitGroup
}

// errSenderDone is the sender's error once the stream ended: what it still
// held is not sent.
var errSenderDone = errors.New("logsvc: stream ended")

func newSender(stream grpc.ServerStream, stop func()) *sender {
	s := &sender{stream: stream, stop: stop}
	s.space.L = &s.mu
	return s
}

func (s *sender) send(m any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) >= senderQueue && s.err == nil {
		s.space.Wait()
	}
	if s.err != nil {
		return s.err
	}
	s.queue = append(s.queue, m)
	if !s.running {
		s.running = true
		s.wg.Add(1)
		go s.run()
	}
	return nil
}

func (s *sender) run() {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) > 0 && s.err == nil {
		m := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.space.Signal()
		s.mu.Unlock()
		err := s.stream.SendMsg(m)
		if err != nil {
			s.stop() // Stream may be waiting for deliveries
		}
		s.mu.Lock()
		if err != nil && s.err == nil {
			s.err = err
		}
	}
	s.running = false
	s.queue = nil // let the backing array go while the stream idles
	s.space.Broadcast()
}

// wait ends the sender once the stream ended: it waits for the message
// being sent, drops the rest, and returns SendMsg's error, if there was
// one.
func (s *sender) wait() error {
	s.mu.Lock()
	err := s.err
	if err == nil {
		s.err = errSenderDone
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}
