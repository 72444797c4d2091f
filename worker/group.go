package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenrpc/warren/core"
)

// A Worker consumes from the broker behind the gateway.
type Worker interface {
	// Attach builds the worker's core components (a core.Server, or
	// Components of its own) on the group's Supervisor. NewGroup calls it
	// once.
	Attach(sup *core.Supervisor)
	// Shutdown stops consuming and waits until what the worker holds is
	// finished (or handed back to the broker), or ctx ends. After it the
	// worker consumes nothing, even after a reconnect.
	Shutdown(ctx context.Context) error
}

// Config configures a Group. The zero value works on the local broker.
type Config struct {
	// AMQP configures the workers' broker connection. Default: the local
	// broker, connection name "warren-worker". Its Metrics (package
	// metrics) count every worker's deliveries.
	AMQP core.Config
	// DrainTimeout bounds how long a stopping group lets its workers
	// finish what they hold. Default: 30s.
	DrainTimeout time.Duration
	// Logger receives the group's events. Default: slog.Default().
	Logger *slog.Logger
}

// Group runs workers on one supervised broker connection, the worker
// side's counterpart of gateway.Server.
type Group struct {
	cfg     Config
	sup     *core.Supervisor
	workers []Worker
	once    sync.Once
}

// NewGroup builds a Group running workers. Nothing is dialled until Run.
func NewGroup(cfg Config, workers ...Worker) *Group {
	if cfg.AMQP.Name == "" {
		cfg.AMQP.Name = "warren-worker"
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AMQP.Logger == nil {
		cfg.AMQP.Logger = cfg.Logger
	}
	g := &Group{cfg: cfg, sup: core.NewSupervisor(cfg.AMQP), workers: workers}
	for _, w := range workers {
		w.Attach(g.sup)
	}
	return g
}

// Connected reports whether the group holds a working broker connection.
func (g *Group) Connected() bool { return g.sup.Connected() }

// Run connects and runs the workers until ctx ends; then every worker
// stops consuming and finishes what it holds, for up to DrainTimeout
// (what is left is handed back to the broker), and the connection closes.
// Run may be called once; it returns nil after a shutdown caused by ctx.
func (g *Group) Run(ctx context.Context) error {
	err := errors.New("worker: Run called twice")
	g.once.Do(func() { err = g.run(ctx) })
	return err
}

func (g *Group) run(ctx context.Context) error {
	supCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.sup.Run(supCtx) })
	<-ctx.Done()
	drain, cancel := context.WithTimeout(context.Background(), g.cfg.DrainTimeout)
	g.drain(drain)
	cancel()
	stop()
	wg.Wait()
	g.cfg.Logger.Info("worker: broker connection closed")
	return nil
}

// drainLogInterval is how often a drain that waits logs what it waits for.
const drainLogInterval = time.Second

// drain shuts every worker down at once and waits for them, logging when
// it starts, every drainLogInterval the workers still finishing their
// work, and when it is done.
func (g *Group) drain(ctx context.Context) {
	log := g.cfg.Logger
	start := time.Now()
	log.Info("worker: draining", "workers", len(g.workers), "timeout", g.cfg.DrainTimeout)
	var left atomic.Int64
	left.Store(int64(len(g.workers)))
	var dw sync.WaitGroup
	for _, w := range g.workers {
		dw.Go(func() {
			defer left.Add(-1)
			if err := w.Shutdown(ctx); err != nil {
				log.Warn("worker: drain timeout; what was left goes back to the broker", "err", err)
			}
		})
	}
	done := make(chan struct{})
	go func() { dw.Wait(); close(done) }()
	tick := time.NewTicker(drainLogInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			log.Info("worker: drained", "duration", time.Since(start).Round(time.Millisecond))
			return
		case <-tick.C:
			log.Info("worker: waiting for workers to finish their deliveries", "workers", left.Load(),
				"left", (g.cfg.DrainTimeout - time.Since(start)).Round(time.Millisecond))
		}
	}
}
