package core

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenrpc/warren/internal/brokertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestBackoffStaysWithinBounds(t *testing.T) {
	t.Parallel()
	lo, hi := 100*time.Millisecond, 2*time.Second
	for failures := range 12 {
		ceil := min(hi, lo<<failures)
		for range 200 {
			if got := backoff(lo, hi, failures); got < lo/2 || got > ceil {
				t.Fatalf("backoff(%v, %v, %d) = %v, want within [%v, %v]", lo, hi, failures, got, lo/2, ceil)
			}
		}
	}
}

func TestRedactHidesThePassword(t *testing.T) {
	t.Parallel()
	got := redact("amqp://user:s3cret@host:5673/vh")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "user") {
		t.Errorf("redact = %q, want the user without the password", got)
	}
	if got := redact("::bad"); got != "<invalid url>" {
		t.Errorf("redact(bad) = %q", got)
	}
}

// recorder is a Handler that records its calls and can fail Connected.
type recorder struct {
	mu     sync.Mutex
	events []string
	failN  int // fail this many Connected calls first
}

func (r *recorder) Connected(context.Context, *Conn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failN > 0 {
		r.failN--
		r.events = append(r.events, "failed")
		return errors.New("set-up failed on purpose")
	}
	r.events = append(r.events, "connected")
	return nil
}

func (r *recorder) Disconnected(error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "disconnected")
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func runSupervisor(t *testing.T, cfg Config, h ...Component) *Supervisor {
	t.Helper()
	cfg.Logger = quietLog
	s := NewSupervisor(cfg, h...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Run = %v, want ErrClosed", err)
		}
	})
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSupervisorReconnectsAfterBrokerClosesTheConnection(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	name := "warren-test-" + t.Name()
	r := &recorder{}
	s := runSupervisor(t, Config{URLs: []string{url}, Name: name, MinBackoff: 20 * time.Millisecond}, r)
	waitFor(t, "first connection", s.Connected)
	for i := range 3 {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := brokertest.CloseConnections(name)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: the broker lists no connection named %q", i, name)
			}
			time.Sleep(100 * time.Millisecond)
		}
		want := 2*(i+1) + 1 // connected, (disconnected, connected) x (i+1)
		waitFor(t, "reconnection", func() bool { return len(r.snapshot()) >= want && s.Connected() })
	}
	got := r.snapshot()
	for i, e := range got {
		want := "connected"
		if i%2 == 1 {
			want = "disconnected"
		}
		if e != want {
			t.Fatalf("events %v: event %d is %q, want %q (strict alternation)", got, i, e, want)
		}
	}
}

func TestSupervisorRetriesAFailedSetUp(t *testing.T) {
	t.Parallel()
	first := &recorder{}
	second := &recorder{failN: 2}
	s := runSupervisor(t, Config{URLs: []string{brokertest.Require(t)}, MinBackoff: 10 * time.Millisecond}, first, second)
	waitFor(t, "connection", s.Connected)
	// The first handler was told of each failed set-up; the second never
	// saw a Disconnected for a Connected that failed.
	if got, want := strings.Join(first.snapshot(), ","), "connected,disconnected,connected,disconnected,connected"; got != want {
		t.Errorf("first handler events %s, want %s", got, want)
	}
	if got, want := strings.Join(second.snapshot(), ","), "failed,failed,connected"; got != want {
		t.Errorf("second handler events %s, want %s", got, want)
	}
}

func TestSupervisorTriesTheURLsInTurn(t *testing.T) {
	t.Parallel()
	good := brokertest.Require(t)
	// Port 1 refuses at once; the supervisor must move on to the next URL.
	s := runSupervisor(t, Config{URLs: []string{"amqp://guest:guest@127.0.0.1:1/", good}, MinBackoff: 10 * time.Millisecond}, &recorder{})
	waitFor(t, "connection through the second URL", s.Connected)
}

func TestSupervisorStopsWhileTheBrokerIsDown(t *testing.T) {
	t.Parallel()
	s := NewSupervisor(Config{URLs: []string{"amqp://guest:guest@127.0.0.1:1/"}, Logger: quietLog}, &recorder{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run = %v, want ErrClosed", err)
	}
	if s.Connected() {
		t.Error("Connected() = true with no broker")
	}
}
