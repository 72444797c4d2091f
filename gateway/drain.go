package gateway

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// drainLogInterval is how often a drain that waits logs what it waits for.
const drainLogInterval = time.Second

// calls counts the unary calls in flight; streams holds the streaming
// ones.
type calls struct{ n atomic.Int64 }

func (c *calls) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	c.n.Add(1)
	defer c.n.Add(-1)
	return h(ctx, req)
}

// count is the number of open streams.
func (st *streams) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.open)
}

// stopGRPC stops gracefully, falling back to a hard stop after the drain
// timeout. It logs what it waits for when it starts, every
// drainLogInterval while it waits, and when it is done.
func (s *Server) stopGRPC() {
	log := s.cfg.Logger
	start := time.Now()
	log.Info("gateway: draining", "calls", s.calls.n.Load(), "streams", s.streams.count(), "timeout", s.cfg.DrainTimeout)
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	tick := time.NewTicker(drainLogInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			log.Info("gateway: drained", "duration", time.Since(start).Round(time.Millisecond))
			return
		case <-tick.C:
			log.Info("gateway: waiting for in-flight calls", "calls", s.calls.n.Load(), "streams", s.streams.count(),
				"left", (s.cfg.DrainTimeout - time.Since(start)).Round(time.Millisecond))
		case <-t.C:
			log.Warn("gateway: drain timeout; cancelling in-flight calls", "timeout", s.cfg.DrainTimeout,
				"calls", s.calls.n.Load(), "streams", s.streams.count())
			s.grpc.Stop()
			<-done
			log.Info("gateway: drained", "duration", time.Since(start).Round(time.Millisecond))
			return
		}
	}
}
