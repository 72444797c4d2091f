package grpcstream

import (
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// fakeStream records what SendMsg was given; SendMsg blocks while gate is
// held and fails with err once err is set.
type fakeStream struct {
	grpc.ServerStream
	gate sync.Mutex
	mu   sync.Mutex
	sent []any
	err  error
}

func (f *fakeStream) SendMsg(m any) error {
	f.gate.Lock()
	defer f.gate.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.sent = append(f.sent, m)
	return nil
}

func (f *fakeStream) sentCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

func TestSenderKeepsOrder(t *testing.T) {
	t.Parallel()
	f := &fakeStream{}
	s := NewSender(f, func() { t.Error("stop called without an error") })
	const n = 1000
	for i := range n {
		if err := s.Send(i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // let the goroutine end, and start again
		}
	}
	for deadline := time.Now().Add(10 * time.Second); f.sentCount() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("wait: got %v, want nil", err)
	}
	for i, m := range f.sent {
		if m != i {
			t.Fatalf("message %d: got %v, want %d (in order)", i, m, i)
		}
	}
	if len(f.sent) != n {
		t.Fatalf("got %d messages sent, want %d", len(f.sent), n)
	}
}

func TestSenderBoundsItsQueue(t *testing.T) {
	t.Parallel()
	f := &fakeStream{}
	s := NewSender(f, func() {})
	f.gate.Lock() // the client reads nothing
	blocked := make(chan int, 1)
	go func() {
		for i := 0; ; i++ {
			if err := s.Send(i); err != nil {
				blocked <- -1
				return
			}
			if i == Queue+1 {
				// one in SendMsg, Queue queued: this one waits
				blocked <- i
				return
			}
		}
	}()
	select {
	case i := <-blocked:
		t.Fatalf("send %d returned while the stream took nothing; want it to wait once %d wait", i, Queue)
	case <-time.After(200 * time.Millisecond):
	}
	f.gate.Unlock()
	if got := <-blocked; got != Queue+1 {
		t.Fatalf("got %d, want %d", got, Queue+1)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("wait: %v", err)
	}
}

func TestSenderStopsAtItsFirstError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	f := &fakeStream{err: boom}
	stopped := make(chan struct{})
	s := NewSender(f, func() { close(stopped) })
	if err := s.Send(1); err != nil {
		t.Fatalf("first send: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription was not stopped after SendMsg failed")
	}
	if err := s.Send(2); !errors.Is(err, boom) {
		t.Fatalf("send after the failure: got %v, want %v", err, boom)
	}
	if err := s.Wait(); !errors.Is(err, boom) {
		t.Fatalf("wait: got %v, want %v", err, boom)
	}
}

func TestSenderWaitDropsTheRest(t *testing.T) {
	t.Parallel()
	f := &fakeStream{}
	s := NewSender(f, func() {})
	f.gate.Lock()
	for i := range 5 {
		if err := s.Send(i); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	time.Sleep(50 * time.Millisecond)
	f.gate.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("wait: got %v, want nil", err)
	}
	if n := f.sentCount(); n > 1 {
		t.Fatalf("%d messages sent after the stream ended, want at most the one in SendMsg", n)
	}
	if err := s.Send(9); !errors.Is(err, errDone) {
		t.Fatalf("send after wait: got %v, want %v", err, errDone)
	}
}
