// Package grpcstream keeps a gRPC server stream's handler goroutine
// shallow while it waits, so that an idle stream costs a 4 KiB stack, not
// 8: Offload runs the deep part of setting a stream up (decoding the
// request, subscribing, the header) on a short-lived goroutine, and a
// Sender sends the stream's messages from a goroutine that runs only while
// there are messages to send. logsvc's SubscribeLogs and route's subscribe
// routes use both; see logsvc/handler.go for why and what it measured.
package grpcstream

import (
	"errors"
	"sync"

	"google.golang.org/grpc"
)

// Offload runs f on a new goroutine, so that the stack f needs is that
// goroutine's, and returns f's error once it returned.
func Offload(f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return <-done
}

// Queue is how many messages a Sender holds for its goroutine: the
// subscription's backlog in the gateway is its buffer's (MaxLength) and
// these.
const Queue = 32

// Sender sends a stream's messages, in order, from a goroutine that runs
// while it has messages to send and ends when it has none: one goroutine
// start per burst of messages, none while the stream is idle. Send waits
// while Queue messages wait already, so a slow client still fills
// the subscription's buffer (and overflows it) as before. The first
// error of SendMsg ends the subscription (stop) and is the stream's.
type Sender struct {
	stream grpc.ServerStream
	stop   func()

	mu      sync.Mutex
	space   sync.Cond // signalled when the goroutine took a message or ended
	queue   []any
	running bool
	err     error // SendMsg's first error, or errDone after wait
	wg      sync.WaitGroup
}

// errDone is the sender's error once the stream ended: what it still
// held is not sent.
var errDone = errors.New("grpcstream: stream ended")

// NewSender returns a Sender on stream; stop is called (once it failed)
// to end what feeds it.
func NewSender(stream grpc.ServerStream, stop func()) *Sender {
	s := &Sender{stream: stream, stop: stop}
	s.space.L = &s.mu
	return s
}

// Send queues m for sending, waiting while Queue messages wait already;
// it returns the first error SendMsg returned, if any.
func (s *Sender) Send(m any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) >= Queue && s.err == nil {
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

func (s *Sender) run() {
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

// Wait ends the Sender once the stream ended: it waits for the message
// being sent, drops the rest, and returns SendMsg's error, if there was
// one.
func (s *Sender) Wait() error {
	s.mu.Lock()
	err := s.err
	if err == nil {
		s.err = errDone
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}
