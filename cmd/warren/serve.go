package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/worker"
)

// gatewayFlags configure the gateway.
type gatewayFlags struct {
	listen    string
	rpcQueue  string
	replyMode string
	timeout   time.Duration
	drain     time.Duration
}

func (f *gatewayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", defaultAddr, "gRPC listen address")
	fs.StringVar(&f.rpcQueue, "rpc-queue", worker.DefaultRPCQueue, "queue Fibonacci requests go to")
	fs.StringVar(&f.replyMode, "reply-mode", "direct", "how replies come back: direct (amq.rabbitmq.reply-to) or queue (a gateway-owned reply queue)")
	fs.DurationVar(&f.timeout, "default-timeout", 10*time.Second, "deadline of calls that have none")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "how long shutdown waits for in-flight calls")
}

func (f *gatewayFlags) config(af *amqpFlags, log *slog.Logger) (gateway.Config, error) {
	mode, err := gateway.ParseReplyMode(f.replyMode)
	if err != nil {
		return gateway.Config{}, err
	}
	return gateway.Config{
		AMQP:           af.config("warren-gateway", log),
		RPCQueue:       f.rpcQueue,
		ReplyMode:      mode,
		DefaultTimeout: f.timeout,
		DrainTimeout:   f.drain,
		Logger:         log,
	}, nil
}

// workerFlags configure the workers.
type workerFlags struct {
	rpcQueue  string
	queueType string
	prefetch  int
}

func (f *workerFlags) register(fs *flag.FlagSet, withQueue bool) {
	if withQueue {
		fs.StringVar(&f.rpcQueue, "rpc-queue", worker.DefaultRPCQueue, "queue the Fibonacci worker consumes")
	}
	fs.StringVar(&f.queueType, "queue-type", "classic", "type of the queues the workers declare when missing: classic (as the tutorials) or quorum (clusters)")
	fs.IntVar(&f.prefetch, "prefetch", 64, "Fibonacci requests a worker may hold unacknowledged")
}

// workers runs the workers on a connection of their own until ctx ends,
// then lets them finish what they hold.
type workers struct {
	fib *worker.Fibonacci
	sup *amqpx.Supervisor
}

func newWorkers(af *amqpFlags, wf *workerFlags, rpcQueue string, log *slog.Logger) (*workers, error) {
	qt, err := amqpx.ParseQueueType(wf.queueType)
	if err != nil {
		return nil, err
	}
	fib := worker.NewFibonacci(worker.FibonacciConfig{
		Queue: rpcQueue, QueueType: qt, Prefetch: wf.prefetch, Logger: log,
	})
	return &workers{fib: fib, sup: amqpx.New(af.config("warren-worker", log), fib)}, nil
}

func (w *workers) run(ctx context.Context, log *slog.Logger) {
	supCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.sup.Run(supCtx) })
	<-ctx.Done()
	drain, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := w.fib.Shutdown(drain); err != nil {
		log.Warn("worker: drain", "err", err)
	}
	cancel()
	stop()
	wg.Wait()
}

func gatewayCommand(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("gateway", "", stderr)
	var af amqpFlags
	var gf gatewayFlags
	af.register(fs)
	gf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := af.logger(stderr)
	if err != nil {
		return err
	}
	cfg, err := gf.config(&af, log)
	if err != nil {
		return err
	}
	return serveGateway(ctx, gf.listen, cfg, log)
}

func serveGateway(ctx context.Context, addr string, cfg gateway.Config, log *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("gateway listening", "addr", lis.Addr().String(), "rpc_queue", cfg.RPCQueue)
	err = gateway.New(cfg).Serve(ctx, lis)
	log.Info("gateway stopped")
	return err
}

func workerCommand(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("worker", "", stderr)
	var af amqpFlags
	var wf workerFlags
	af.register(fs)
	wf.register(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := af.logger(stderr)
	if err != nil {
		return err
	}
	w, err := newWorkers(&af, &wf, wf.rpcQueue, log)
	if err != nil {
		return err
	}
	log.Info("worker started", "rpc_queue", wf.rpcQueue)
	w.run(ctx, log)
	log.Info("worker stopped")
	return nil
}

func devCommand(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("dev", "", stderr)
	var af amqpFlags
	var gf gatewayFlags
	var wf workerFlags
	af.register(fs)
	gf.register(fs)
	wf.register(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := af.logger(stderr)
	if err != nil {
		return err
	}
	cfg, err := gf.config(&af, log)
	if err != nil {
		return err
	}
	w, err := newWorkers(&af, &wf, gf.rpcQueue, log)
	if err != nil {
		return err
	}
	// The workers start first, so the gateway finds rpc_queue consumed; they
	// stop last, so in-flight calls get their replies.
	wctx, stopWorkers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(wctx, log) })
	err = serveGateway(ctx, gf.listen, cfg, log)
	stopWorkers()
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
