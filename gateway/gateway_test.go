package gateway_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/faultproxy"
	"github.com/warrenrpc/warren/internal/fib"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

func TestHealthFollowsTheBrokerConnection(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	startFibWorker(t, queue)
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue, AMQP: core.Config{MinBackoff: 50 * time.Millisecond}})
	health := healthpb.NewHealthClient(gw.conn)
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health check: %v", err)
		}
		return resp.GetStatus()
	}
	names := []string{"", "warren.v1.FibonacciService", "warren.v1.TaskService", "warren.v1.QueueService", "warren.v1.LogService"}
	allAre := func(want healthpb.HealthCheckResponse_ServingStatus) func() bool {
		return func() bool {
			for _, n := range names {
				if check(n) != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "every service SERVING while connected", allAre(healthpb.HealthCheckResponse_SERVING))
	// Close the gateway's connection from the broker's side.
	warrentest.CloseConnections(t, "warren-test-"+t.Name())
	waitFor(t, "NOT_SERVING", func() bool { return check("") == healthpb.HealthCheckResponse_NOT_SERVING })
	waitFor(t, "every service SERVING again after the reconnect", allAre(healthpb.HealthCheckResponse_SERVING))
}

// Long-lived streams that hold the gRPC server's stream workers must not
// hold up calls: beyond the pool, calls run on goroutines of their own.
func TestStreamWorkersHeldByStreamsDoNotBlockCalls(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	startFibWorker(t, queue)
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue, StreamWorkers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	queues := warrenv1.NewQueueServiceClient(gw.conn)
	hello := brokertest.Name(t, "hola")
	for range 2 { // the first holds the one worker for as long as it lasts
		stream, err := queues.Receive(ctx, &warrenv1.ReceiveRequest{Queue: hello})
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if _, err := stream.Header(); err != nil {
			t.Fatalf("Receive header: %v", err)
		}
	}
	var wg sync.WaitGroup
	for n := range uint32(16) {
		wg.Go(func() {
			resp, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: n})
			if err != nil {
				t.Errorf("Fibonacci(%d) while streams hold the workers: %v", n, err)
				return
			}
			if got, want := resp.GetValue(), fib.Compute(n); got != want {
				t.Errorf("Fibonacci(%d) = %s, want %s", n, got, want)
			}
		})
	}
	wg.Wait()
}

// Every stream still open at shutdown ends with UNAVAILABLE "gateway:
// shutting down", whichever service it belongs to.
func TestShutdownEndsEveryStream(t *testing.T) {
	t.Parallel()
	gw := startRPCGateway(t, gwConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type recver interface{ RecvMsg(any) error }
	var streams []recver
	r, err := warrenv1.NewQueueServiceClient(gw.conn).Receive(ctx, &warrenv1.ReceiveRequest{Queue: brokertest.Name(t, "hola")})
	if err == nil {
		_, err = r.Header()
	}
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	streams = append(streams, r)
	w, err := warrenv1.NewTaskServiceClient(gw.conn).WatchTasks(ctx, &warrenv1.WatchTasksRequest{})
	if err == nil {
		_, err = w.Header()
	}
	if err != nil {
		t.Fatalf("WatchTasks: %v", err)
	}
	streams = append(streams, w)
	s, err := warrenv1.NewLogServiceClient(gw.conn).SubscribeLogs(ctx, &warrenv1.SubscribeLogsRequest{})
	if err == nil {
		_, err = s.Header()
	}
	if err != nil {
		t.Fatalf("SubscribeLogs: %v", err)
	}
	streams = append(streams, s)
	go gw.Stop()
	for i, s := range streams {
		err := s.RecvMsg(new(warrenv1.ReceiveResponse))
		wantCode(t, err, codes.Unavailable)
		t.Logf("stream %d: %v", i, err)
	}
}

// TestBlockedStateEndsWithItsConnection: a connection that drops while
// the broker blocks publishing (a memory alarm) and comes back to a
// healthy broker publishes again at once; the block belonged to the old
// connection. The gateway reaches a node of the test's own through a
// proxy, which cuts the connection during the alarm and refuses
// reconnects until the alarm is over.
func TestBlockedStateEndsWithItsConnection(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNode(t)
	u, err := amqp.ParseURI(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	host, port, _ := net.SplitHostPort(proxy.Addr())
	u.Host = host
	u.Port, _ = strconv.Atoi(port)
	url := u.String()

	names := gwConfig{}.names(t)
	startFibWorker(t, names.RPCQueue, node.URL)
	warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{URLs: []string{node.URL}}},
		tasksvc.NewWorker(tasksvc.WorkerConfig{Queue: names.Tasks, EventsExchange: names.Events, Logger: quietLog}))
	names.AMQP = core.Config{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	gw := startRPCGatewayAt(t, url, names)

	tasks := warrenv1.NewTaskServiceClient(gw.conn)
	queues := warrenv1.NewQueueServiceClient(gw.conn)
	logs := warrenv1.NewLogServiceClient(gw.conn)
	hello := brokertest.Name(t, "hola")
	publishers := map[string]func(context.Context) error{
		"SubmitTask": func(ctx context.Context) error {
			_, err := tasks.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "x"})
			return err
		},
		"Send": func(ctx context.Context) error {
			_, err := queues.Send(ctx, &warrenv1.SendRequest{Queue: hello, Body: "x"})
			return err
		},
		"EmitLog": func(ctx context.Context) error {
			_, err := logs.EmitLog(ctx, &warrenv1.EmitLogRequest{Body: "x"})
			return err
		},
	}
	call := func(publish func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return publish(ctx)
	}
	for name, publish := range publishers {
		if err := call(publish); err != nil {
			t.Fatalf("%s before the alarm: %v", name, err)
		}
	}

	node.Ctl(t, "set_vm_memory_high_watermark", "0")
	waitFor(t, "the alarm to block the gateway", func() bool {
		return call(publishers["EmitLog"]) != nil
	})
	for name, publish := range publishers {
		wantCode(t, call(publish), codes.ResourceExhausted)
		t.Logf("%s under the alarm: RESOURCE_EXHAUSTED", name)
	}
	proxy.Refuse(true)
	proxy.Drop()
	waitFor(t, "the gateway to notice the drop", func() bool { return !gw.Connected() })
	node.Ctl(t, "set_vm_memory_high_watermark", "0.4")
	proxy.Refuse(false)
	waitFor(t, "the gateway to reconnect", gw.Connected)
	back := time.Now()
	for name, publish := range publishers {
		if err := call(publish); err != nil {
			t.Errorf("%s on the new connection to a healthy broker: %v, want success at once", name, err)
		}
	}
	if !t.Failed() {
		t.Logf("all three publish again %v after the reconnect", time.Since(back).Round(time.Millisecond))
	}
}
