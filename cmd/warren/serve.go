package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/logsvc"
	"github.com/warrenrpc/warren/metrics"
	"github.com/warrenrpc/warren/queuesvc"
	"github.com/warrenrpc/warren/route"
	"github.com/warrenrpc/warren/tasksvc"
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
	maxConnAge     time.Duration
	maxConnGrace   time.Duration
	mgmtURL        string
	descriptorSets []string
	routePrefix    string
	queueType      string
	accessLog      bool
	history        historyFlags
	sec            serverSecurityFlags
}

func (f *gatewayFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	defer f.sec.register(cmd)
	fs.StringVar(&f.listen, "listen", defaultAddr, "gRPC listen address (host:port)")
	fs.StringVar(&f.rpcQueue, "rpc-queue", fibsvc.DefaultQueue, "queue Fibonacci requests go to")
	fs.StringVar(&f.taskQueue, "task-queue", tasksvc.DefaultQueue, "queue tasks go to")
	fs.StringVar(&f.eventsExchange, "events-exchange", tasksvc.DefaultEventsExchange, "topic exchange of task lifecycle events")
	fs.StringVar(&f.logExchanges[0], "logs-exchange", logsvc.DefaultFanoutExchange, "fanout exchange of LogService (the tutorial's logs)")
	fs.StringVar(&f.logExchanges[1], "direct-logs-exchange", logsvc.DefaultDirectExchange, "direct exchange of LogService (the tutorial's direct_logs)")
	fs.StringVar(&f.logExchanges[2], "topic-logs-exchange", logsvc.DefaultTopicExchange, "topic exchange of LogService (the tutorial's topic_logs)")
	fs.StringVar(&f.mgmtURL, "management-url", tasksvc.DefaultManagementURL, "RabbitMQ management API, for task queue statistics")
	enumFlag(cmd, &f.replyMode, "reply-mode", "queue", "how replies come back: queue (a gateway-owned reply queue) or direct (amq.rabbitmq.reply-to)", "queue", "direct")
	fs.DurationVar(&f.timeout, "default-timeout", 10*time.Second, "deadline of calls that have none, including their waits for the broker")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "how long shutdown waits for in-flight calls")
	fs.DurationVar(&f.maxConnAge, "max-connection-age", 0, "close a client connection after about this long (GOAWAY; the client dials again), so clients behind an L4 load balancer spread over gateways added later; 0: never")
	fs.DurationVar(&f.maxConnGrace, "max-connection-age-grace", 0, "how long calls in flight on a connection past --max-connection-age may still run; 0: no limit")
	queueTypeFlag(cmd, &f.queueType)
	fs.StringSliceVar(&f.descriptorSets, "descriptor-set", nil, "a FileDescriptorSet (buf build -o FILE) whose services with warren routes the gateway serves too; repeat it or separate files with commas")
	fs.StringVar(&f.routePrefix, "route-prefix", "", "put before the names of the queues and exchanges of the routes in --descriptor-set (their workers must use the same prefix)")
	accessLogFlag(cmd, &f.accessLog)
	f.history.register(cmd)
}

// gateway builds the gateway and its services from the flags, counting
// into m when it is not nil.
func (f *gatewayFlags) gateway(af *amqpFlags, m *metrics.Metrics, log *slog.Logger) (*gateway.Server, error) {
	mode, err := core.ParseReplyMode(f.replyMode)
	if err != nil {
		return nil, err
	}
	qt, err := core.ParseQueueType(f.queueType)
	if err != nil {
		return nil, &usageError{err}
	}
	history, err := f.history.config()
	if err != nil {
		return nil, err
	}
	services := []gateway.Service{
		fibsvc.New(fibsvc.Config{Queue: f.rpcQueue, ReplyMode: mode, DefaultTimeout: f.timeout}),
		tasksvc.New(tasksvc.Config{
			Queue: f.taskQueue, EventsExchange: f.eventsExchange,
			ManagementURL: f.mgmtURL, DefaultTimeout: f.timeout,
		}),
		queuesvc.New(queuesvc.Config{DefaultTimeout: f.timeout, QueueType: qt, Logger: log}),
		logsvc.New(logsvc.Config{
			FanoutExchange: f.logExchanges[0],
			DirectExchange: f.logExchanges[1],
			TopicExchange:  f.logExchanges[2],
			DefaultTimeout: f.timeout,
			History:        history,
		}),
	}
	if len(f.descriptorSets) > 0 {
		routed, err := route.NewServices(route.Config{ReplyMode: mode, DefaultTimeout: f.timeout, Prefix: f.routePrefix, Logger: log}, f.descriptorSets...)
		if err != nil {
			return nil, err
		}
		for _, svc := range routed {
			services = append(services, svc)
		}
	}
	amqpCfg, err := af.config("warren-gateway", log)
	if err != nil {
		return nil, err
	}
	cfg := gateway.Config{
		AMQP:                  amqpCfg,
		DrainTimeout:          f.drain,
		MaxConnectionAge:      f.maxConnAge,
		MaxConnectionAgeGrace: f.maxConnGrace,
		Logger:                log,
		AccessLog:             accessLogger(f.accessLog, log),
		Metrics:               m,
	}
	if err := f.sec.apply(&cfg); err != nil {
		return nil, err
	}
	return gateway.New(cfg, services), nil
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

// register adds the worker flags; withQueues adds the entity names too
// (dev takes them from the gateway flags).
func (f *workerFlags) register(cmd *cobra.Command, withQueues bool) {
	fs := cmd.Flags()
	if withQueues {
		fs.StringVar(&f.rpcQueue, "rpc-queue", fibsvc.DefaultQueue, "queue the Fibonacci worker consumes")
		fs.StringVar(&f.taskQueue, "task-queue", tasksvc.DefaultQueue, "queue the tasks worker consumes")
		fs.StringVar(&f.eventsExchange, "events-exchange", tasksvc.DefaultEventsExchange, "topic exchange the tasks worker publishes lifecycle events to")
	}
	if cmd.Flags().Lookup("queue-type") == nil { // dev: the gateway's
		queueTypeFlag(cmd, &f.queueType)
	}
	fs.IntVar(&f.prefetch, "prefetch", 64, "Fibonacci requests a worker may hold unacknowledged")
	fs.BoolVar(&f.fib, "fib", true, "run the Fibonacci worker")
	fs.BoolVar(&f.tasks, "tasks", true, "run the tasks worker")
	fs.IntVar(&f.taskPrefetch, "task-prefetch", 1, "tasks a worker may hold unacknowledged (1: fair dispatch)")
	fs.DurationVar(&f.taskUnit, "task-unit", time.Second, `work time of one "." in a task body`)
	fs.IntVar(&f.taskAttempts, "task-attempts", 3, "attempts of a failing task before it is dead-lettered")
	fs.DurationVar(&f.drain, "worker-drain-timeout", 30*time.Second, "how long a stopping worker may finish its current work before requeueing it")
}

// queueTypeFlag adds --queue-type, the type of the queues warren declares
// when they are missing.
func queueTypeFlag(cmd *cobra.Command, p *string) {
	enumFlag(cmd, p, "queue-type", string(core.QueueQuorum),
		"type of the queues warren declares when missing (rpc_queue, task_queue, the hello queue): quorum (durable, as the official tutorials declare them today) or classic (as the older tutorials did)",
		string(core.QueueQuorum), string(core.QueueClassic))
}

// workers builds the worker group the flags ask for, on the entities
// named, declaring queues of type queueType, counting into m when it is
// not nil.
func (f *workerFlags) workers(af *amqpFlags, rpcQueue, taskQueue, eventsExchange, queueType string, m *metrics.Metrics, log *slog.Logger) (*worker.Group, error) {
	qt, err := core.ParseQueueType(queueType)
	if err != nil {
		return nil, &usageError{err}
	}
	var ws []worker.Worker
	if f.fib {
		ws = append(ws, fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: rpcQueue, QueueType: qt, Prefetch: f.prefetch}))
	}
	if f.tasks {
		ws = append(ws, tasksvc.NewWorker(tasksvc.WorkerConfig{
			Queue: taskQueue, EventsExchange: eventsExchange, QueueType: qt, Prefetch: f.taskPrefetch,
			Unit: f.taskUnit, MaxAttempts: f.taskAttempts,
		}))
	}
	if len(ws) == 0 {
		return nil, usagef("no worker to run: --fib and --tasks are both false")
	}
	amqpCfg, err := af.config("warren-worker", log)
	if err != nil {
		return nil, err
	}
	if m != nil {
		amqpCfg.Metrics = m
	}
	return worker.NewGroup(worker.Config{AMQP: amqpCfg, DrainTimeout: f.drain, Logger: log}, ws...), nil
}

func newGatewayCmd() *cobra.Command {
	var af amqpFlags
	var gf gatewayFlags
	var mf metricsFlags
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the gRPC gateway",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sv, err := startServing(cmd, &af, &mf, "warren-gateway")
			if err != nil {
				return err
			}
			defer sv.stop()
			ctx, m, log := sv.ctx, sv.metrics, sv.log
			srv, err := gf.gateway(&af, m, log)
			if err != nil {
				return err
			}
			return serveGateway(ctx, gf.listen, srv, log)
		},
	}
	af.register(cmd)
	gf.register(cmd)
	mf.register(cmd)
	return cmd
}

// serving is what every server command (gateway, worker, dev) sets up
// before it builds its servers: its logger, a context that ends with the
// command, the metrics server (when --metrics-listen asks) and tracing
// (when the OTEL_* variables ask).
type serving struct {
	ctx     context.Context
	log     *slog.Logger
	metrics *metrics.Metrics // nil: no metrics
	stop    func()
}

// startServing sets up what a server command needs; service names its
// traces. stop ends tracing, then the context, then the metrics server,
// which so answers scrapes while the servers drain.
func startServing(cmd *cobra.Command, af *amqpFlags, mf *metricsFlags, service string) (*serving, error) {
	log := af.logger(cmd)
	ctx, cancel := context.WithCancel(cmd.Context())
	m, waitMetrics, err := mf.serve(ctx, log)
	if err != nil {
		cancel()
		return nil, err
	}
	stopTracing, err := af.trace(ctx, service, cmd.OutOrStdout(), log)
	if err != nil {
		cancel()
		waitMetrics()
		return nil, err
	}
	return &serving{ctx: ctx, log: log, metrics: m, stop: func() {
		stopTracing()
		cancel()
		waitMetrics()
	}}, nil
}

func serveGateway(ctx context.Context, addr string, srv *gateway.Server, log *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("gateway listening", "addr", lis.Addr().String())
	err = srv.Serve(ctx, lis)
	log.Info("gateway stopped")
	return err
}

func newWorkerCmd() *cobra.Command {
	var af amqpFlags
	var wf workerFlags
	var mf metricsFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the workers (rpc_server.py and worker.py)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sv, err := startServing(cmd, &af, &mf, "warren-worker")
			if err != nil {
				return err
			}
			defer sv.stop()
			ctx, m, log := sv.ctx, sv.metrics, sv.log
			g, err := wf.workers(&af, wf.rpcQueue, wf.taskQueue, wf.eventsExchange, wf.queueType, m, log)
			if err != nil {
				return err
			}
			log.Info("worker started", "fib", wf.fib, "rpc_queue", wf.rpcQueue, "tasks", wf.tasks, "task_queue", wf.taskQueue)
			err = g.Run(ctx)
			log.Info("worker stopped")
			return err
		},
	}
	af.register(cmd)
	wf.register(cmd, true)
	mf.register(cmd)
	return cmd
}

func newDevCmd() *cobra.Command {
	var af amqpFlags
	var gf gatewayFlags
	var wf workerFlags
	var mf metricsFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the gateway and every worker in one process (what make run starts)",
		Example: `  warren dev
  warren dev --listen 127.0.0.1:6000`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sv, err := startServing(cmd, &af, &mf, "warren")
			if err != nil {
				return err
			}
			defer sv.stop()
			ctx, m, log := sv.ctx, sv.metrics, sv.log
			srv, err := gf.gateway(&af, m, log)
			if err != nil {
				return err
			}
			g, err := wf.workers(&af, gf.rpcQueue, gf.taskQueue, gf.eventsExchange, gf.queueType, m, log)
			if err != nil {
				return err
			}
			// The workers start first, so the gateway finds rpc_queue
			// consumed; they stop last, so in-flight calls get their
			// replies.
			wctx, stopWorkers := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { _ = g.Run(wctx) })
			err = serveGateway(ctx, gf.listen, srv, log)
			stopWorkers()
			wg.Wait()
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		},
	}
	af.register(cmd)
	gf.register(cmd)
	wf.register(cmd, false)
	mf.register(cmd)
	return cmd
}
