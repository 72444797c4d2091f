package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeWorker records what the Group does with it.
type fakeWorker struct {
	attached atomic.Bool
	drain    time.Duration // how long Shutdown takes, unless its ctx ends first
	shutdown atomic.Bool
	deadline atomic.Bool // Shutdown's ctx ended first
}

func (w *fakeWorker) Attach(*core.Supervisor) { w.attached.Store(true) }

func (w *fakeWorker) Shutdown(ctx context.Context) error {
	w.shutdown.Store(true)
	select {
	case <-time.After(w.drain):
		return nil
	case <-ctx.Done():
		w.deadline.Store(true)
		return ctx.Err()
	}
}

// Run attaches every worker, and when its context ends drains them all
// (each for at most DrainTimeout) before it returns.
func TestGroupDrainsItsWorkers(t *testing.T) {
	t.Parallel()
	quick, slow := &fakeWorker{drain: 10 * time.Millisecond}, &fakeWorker{drain: time.Hour}
	g := worker.NewGroup(worker.Config{
		AMQP:         core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-" + t.Name()},
		DrainTimeout: 300 * time.Millisecond,
		Logger:       warrentest.QuietLog,
	}, quick, slow)
	if !quick.attached.Load() || !slow.attached.Load() {
		t.Fatal("NewGroup did not attach every worker")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	warrentest.Eventually(t, 10*time.Second, "the group connected", g.Connected)
	cancel()
	start := time.Now()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after its context ended", err)
	}
	took := time.Since(start)
	if !quick.shutdown.Load() || quick.deadline.Load() {
		t.Errorf("quick worker: shut down %v, cut off %v; want a finished drain", quick.shutdown.Load(), quick.deadline.Load())
	}
	if !slow.shutdown.Load() || !slow.deadline.Load() {
		t.Errorf("slow worker: shut down %v, cut off %v; want its drain cut at the timeout", slow.shutdown.Load(), slow.deadline.Load())
	}
	if took > 5*time.Second {
		t.Errorf("Run returned %v after its context ended, want about the 300ms drain timeout", took)
	}
	if g.Connected() {
		t.Error("the group is still connected after Run returned")
	}
	if err := g.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded, want an error")
	}
}
