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
	"github.com/warrenrpc/warren/logsvc"
	"github.com/warrenrpc/warren/worker"
)

// gatewayFlags configure the gateway.
type gatewayFlags struct {
	listen         string
	rpcQueue       string
	taskQueue      string
	eventsExchange string
	logExchanges   [3]string // fanout, direct, topic
	replyMode      string
	timeout        time.Duration
	drain          time.Duration
	mgmtURL        string
}

func (f *gatewayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", defaultAddr, "gRPC listen address")
	fs.StringVar(&f.rpcQueue, "rpc-queue", worker.DefaultRPCQueue, "queue Fibonacci requests go to")
	fs.StringVar(&f.taskQueue, "task-queue", "task_queue", "queue tasks go to")
	fs.StringVar(&f.eventsExchange, "events-exchange", gateway.TaskEventsExchangeDefault, "topic exchange of task lifecycle events")
	fs.StringVar(&f.logExchanges[0], "logs-exchange", logsvc.DefaultFanoutExchange, "fanout exchange of LogService (the tutorial's logs)")
	fs.StringVar(&f.logExchanges[1], "direct-logs-exchange", logsvc.DefaultDirectExchange, "direct exchange of LogService (the tutorial's direct_logs)")
	fs.StringVar(&f.logExchanges[2], "topic-logs-exchange", logsvc.DefaultTopicExchange, "topic exchange of LogService (the tutorial's topic_logs)")
	fs.StringVar(&f.mgmtURL, "management-url", "http://guest:guest@127.0.0.1:15672", "RabbitMQ management API, for task queue statistics")
	fs.StringVar(&f.replyMode, "reply-mode", "queue", "how replies come back: queue (a gateway-owned reply queue) or direct (amq.rabbitmq.reply-to)")
	fs.DurationVar(&f.timeout, "default-timeout", 10*time.Second, "deadline of calls that have none")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "how long shutdown waits for in-flight calls")
}

func (f *gatewayFlags) config(af *amqpFlags, log *slog.Logger) (gateway.Config, error) {
	mode, err := gateway.ParseReplyMode(f.replyMode)
	if err != nil {
		return gateway.Config{}, err
	}
	return gateway.Config{
		AMQP:     af.config("warren-gateway", log),
		RPCQueue: f.rpcQueue,
		Tasks:    gateway.TaskConfig{Queue: f.taskQueue, EventsExchange: f.eventsExchange, ManagementURL: f.mgmtURL},
		Logs: logsvc.Config{
			FanoutExchange: f.logExchanges[0],
			DirectExchange: f.logExchanges[1],
			TopicExchange:  f.logExchanges[2],
		},
		ReplyMode:      mode,
		DefaultTimeout: f.timeout,
		DrainTimeout:   f.drain,
		Logger:         log,
	}, nil
}

// workerFlags configure the workers.
type workerFlags struct {
	rpcQueue       string
	taskQueue      string
	eventsExchange string
	queueType      string
	prefetch       int
	fib, tasks     bool
	taskPrefetch   int
	taskUnit       time.Duration
	taskAttempts   int
	drain          time.Duration
}

func (f *workerFlags) register(fs *flag.FlagSet, withQueues bool) {
	if withQueues {
		fs.StringVar(&f.rpcQueue, "rpc-queue", worker.DefaultRPCQueue, "queue the Fibonacci worker consumes")
		fs.StringVar(&f.taskQueue, "task-queue", "task_queue", "queue the tasks worker consumes")
		fs.StringVar(&f.eventsExchange, "events-exchange", worker.TaskEventsExchangeDefault, "topic exchange the tasks worker publishes lifecycle events to")
	}
	fs.StringVar(&f.queueType, "queue-type", "classic", "type of the queues the workers declare when missing: classic (as the tutorials) or quorum (clusters)")
	fs.IntVar(&f.prefetch, "prefetch", 64, "Fibonacci requests a worker may hold unacknowledged")
	fs.BoolVar(&f.fib, "fib", true, "run the Fibonacci worker")
	fs.BoolVar(&f.tasks, "tasks", true, "run the tasks worker")
	fs.IntVar(&f.taskPrefetch, "task-prefetch", 1, "tasks a worker may hold unacknowledged (1: fair dispatch)")
	fs.DurationVar(&f.taskUnit, "task-unit", time.Second, `work time of one "." in a task body`)
	fs.IntVar(&f.taskAttempts, "task-attempts", 3, "attempts of a failing task before it is dead-lettered")
	fs.DurationVar(&f.drain, "worker-drain-timeout", 30*time.Second, "how long a stopping worker may finish its current work before requeueing it")
}

// workers runs the workers on a connection of their own until ctx ends,
// then lets them finish what they hold.
type workers struct {
	fib   *worker.Fibonacci // nil when disabled
	task  *worker.Task      // nil when disabled
	sup   *amqpx.Supervisor
	drain time.Duration
}

// newWorkers builds the workers wf asks for, on the entities named.
func newWorkers(af *amqpFlags, wf *workerFlags, rpcQueue, taskQueue, eventsExchange string, log *slog.Logger) (*workers, error) {
	qt, err := amqpx.ParseQueueType(wf.queueType)
	if err != nil {
		return nil, err
	}
	w := &workers{drain: wf.drain}
	var handlers []amqpx.Handler
	if wf.fib {
		w.fib = worker.NewFibonacci(worker.FibonacciConfig{
			Queue: rpcQueue, QueueType: qt, Prefetch: wf.prefetch, Logger: log,
		})
		handlers = append(handlers, w.fib)
	}
	if wf.tasks {
		w.task = worker.NewTask(worker.TaskConfig{
			Queue: taskQueue, EventsExchange: eventsExchange, QueueType: qt, Prefetch: wf.taskPrefetch,
			Unit: wf.taskUnit, MaxAttempts: wf.taskAttempts, Logger: log,
		})
		handlers = append(handlers, w.task)
	}
	if len(handlers) == 0 {
		return nil, errors.New("no worker to run: --fib and --tasks are both false")
	}
	w.sup = amqpx.New(af.config("warren-worker", log), handlers...)
	return w, nil
}

func (w *workers) run(ctx context.Context, log *slog.Logger) {
	supCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.sup.Run(supCtx) })
	<-ctx.Done()
	// Stop consuming, finish (or requeue) what is held, then disconnect.
	drain, cancel := context.WithTimeout(context.Background(), w.drain)
	var dw sync.WaitGroup
	if w.fib != nil {
		dw.Go(func() {
			if err := w.fib.Shutdown(drain); err != nil {
				log.Warn("fibonacci worker: drain", "err", err)
			}
		})
	}
	if w.task != nil {
		dw.Go(func() {
			if err := w.task.Shutdown(drain); err != nil {
				log.Warn("task worker: drain; the current task was requeued", "err", err)
			}
		})
	}
	dw.Wait()
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
	w, err := newWorkers(&af, &wf, wf.rpcQueue, wf.taskQueue, wf.eventsExchange, log)
	if err != nil {
		return err
	}
	log.Info("worker started", "fib", wf.fib, "rpc_queue", wf.rpcQueue, "tasks", wf.tasks, "task_queue", wf.taskQueue)
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
	w, err := newWorkers(&af, &wf, gf.rpcQueue, gf.taskQueue, gf.eventsExchange, log)
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
