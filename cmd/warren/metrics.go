package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/warrenrpc/warren/metrics"
)

// metricsFlags serve the Prometheus metrics of the server commands.
type metricsFlags struct {
	listen string
	pprof  bool
}

func (f *metricsFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.listen, "metrics-listen", "", "serve Prometheus metrics over HTTP at ADDR/metrics (host:port); off when empty")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve the runtime's profiles at /debug/pprof/ on --metrics-listen")
}

// serve listens on --metrics-listen, when it is set, and serves the
// metrics there (and the profiles, with --pprof) until ctx ends; wait
// waits for that server to stop. m is what the gateway and workers count
// into: nil when the flag is empty.
func (f *metricsFlags) serve(ctx context.Context, log *slog.Logger) (m *metrics.Metrics, wait func(), err error) {
	if f.listen == "" {
		if f.pprof {
			return nil, nil, usagef("--pprof serves the profiles on --metrics-listen, which is not set")
		}
		return nil, func() {}, nil
	}
	reg := metrics.NewRegistry()
	if m, err = metrics.New(reg); err != nil {
		return nil, nil, err
	}
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listen: %w", err)
	}
	log.Info("metrics listening", "url", "http://"+lis.Addr().String()+"/metrics", "pprof", f.pprof)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, lis, metrics.Handler(reg, f.pprof)); err != nil {
			log.Error("metrics server failed", "err", err)
		}
	}()
	return m, func() { <-done }, nil
}
