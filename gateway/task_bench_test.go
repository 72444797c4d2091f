package gateway_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/internal/brokertest"
)

// taskBenchWindow is the concurrency of SubmitTask calls and the in-flight
// window of the raw publisher.
const taskBenchWindow = 64

// BenchmarkTaskSubmit measures, in one run, confirmed SubmitTask calls/s at
// concurrency 64 over gRPC on loopback TCP, and T_pub: a raw amqp091-go
// publisher with confirms (persistent, same durable queue, 64 publishings
// in flight). It reports both and their ratio; it asserts no speed.
//
//	go test -run '^$' -bench Task ./gateway/
func BenchmarkTaskSubmit(b *testing.B) {
	url := brokertest.Require(b)
	queue := brokertest.Name(b, "bench")
	task := gateway.NewTaskService(gateway.TaskConfig{Queue: queue, EventsExchange: brokertest.Name(b, "events")})
	sup := amqpx.New(amqpx.Config{URLs: []string{url}, Name: "bench gateway"}, task)
	ctx, cancel := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		_ = sup.Run(ctx)
	}()
	defer func() { cancel(); <-supDone }()
	taskWaitFor(b, 10*time.Second, "gateway connected", sup.Connected)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	warrenv1.RegisterTaskServiceServer(srv, task)
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		_ = srv.Serve(lis)
	}()
	defer func() { task.Shutdown(); srv.Stop(); <-srvDone }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := warrenv1.NewTaskServiceClient(cc)

	conn := brokertest.Dial(b)
	purge := func() {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		defer ch.Close()
		if _, err := ch.QueuePurge(queue, false); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up the gRPC connection and the confirm channels.
	for range taskBenchWindow {
		if _, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "warm-up"}); err != nil {
			b.Fatal(err)
		}
	}
	purge()

	submit := func(n int) time.Duration {
		var next atomic.Int64
		var failed atomic.Value
		var wg sync.WaitGroup
		start := time.Now()
		for range taskBenchWindow {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if _, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "bench task."}); err != nil {
						failed.Store(err)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		if err, _ := failed.Load().(error); err != nil {
			b.Fatalf("SubmitTask: %v", err)
		}
		return elapsed
	}
	noop := taskStartNoop(b)

	// The three measurements take turns in slices, so that a change in
	// the machine's load (other tests on the shared broker) touches all of
	// them alike. Only the SubmitTask slices are timed by the framework.
	const slices = 4
	var grpcElapsed, rawElapsed, grpcOnly time.Duration
	b.ResetTimer()
	b.StopTimer()
	for i := range slices {
		n := b.N / slices
		if i == 0 {
			n += b.N % slices
		}
		if n == 0 {
			continue
		}
		b.StartTimer()
		grpcElapsed += submit(n)
		b.StopTimer()
		purge()
		rawElapsed += taskRawPublish(b, conn, queue, n)
		purge()
		grpcOnly += noop(n)
	}

	calls := float64(b.N) / grpcElapsed.Seconds()
	tpub := float64(b.N) / rawElapsed.Seconds()
	tgrpc := float64(b.N) / grpcOnly.Seconds()
	// Publishing and a gRPC round trip cost what they cost one after the
	// other: the best a gateway can do is 1/(1/T_grpc + 1/T_pub).
	serial := 1 / (1/tgrpc + 1/tpub)
	b.ReportMetric(calls, "calls/s")
	b.ReportMetric(tpub, "T_pub/s")
	b.ReportMetric(tgrpc, "T_grpc/s")
	b.ReportMetric(calls/tpub, "ratio_to_T_pub")
	b.ReportMetric(calls/serial, "ratio_to_serial")
	fmt.Printf("BenchmarkTaskSubmit N=%d: SubmitTask %.0f calls/s (concurrency %d); T_pub %.0f msgs/s (raw amqp091-go, confirms, persistent, window %d); "+
		"T_grpc %.0f calls/s (no-op SubmitTask, same transport); ratio to T_pub %.2f; ratio to 1/(1/T_grpc+1/T_pub) %.2f\n",
		b.N, calls, taskBenchWindow, tpub, taskBenchWindow, tgrpc, calls/tpub, calls/serial)
}

// taskNoopServer answers SubmitTask at once: the gRPC cost alone (what
// the Fibonacci benchmark calls T_echo).
type taskNoopServer struct {
	warrenv1.UnimplementedTaskServiceServer
}

func (taskNoopServer) SubmitTask(context.Context, *warrenv1.SubmitTaskRequest) (*warrenv1.SubmitTaskResponse, error) {
	return &warrenv1.SubmitTaskResponse{TaskId: "noop"}, nil
}

// taskStartNoop serves the no-op TaskService on loopback TCP until the
// benchmark ends and returns a function that times n calls at concurrency
// 64.
func taskStartNoop(b *testing.B) func(n int) time.Duration {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	warrenv1.RegisterTaskServiceServer(srv, taskNoopServer{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close(); srv.Stop(); <-done })
	client := warrenv1.NewTaskServiceClient(cc)
	ctx := context.Background()
	for range taskBenchWindow {
		if _, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{}); err != nil {
			b.Fatal(err)
		}
	}
	return func(n int) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range taskBenchWindow {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if _, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "bench task."}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
}

// taskRawPublish publishes n persistent messages on one confirm-mode
// channel with at most taskBenchWindow unconfirmed, and returns the time
// until the last confirm.
func taskRawPublish(b *testing.B, conn *amqp.Connection, queue string, n int) time.Duration {
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	inflight := make(chan *amqp.DeferredConfirmation, taskBenchWindow-1) // + the one being waited for
	nacks := make(chan int, 1)
	go func() {
		bad := 0
		for dc := range inflight {
			if !dc.Wait() {
				bad++
			}
		}
		nacks <- bad
	}()
	start := time.Now()
	for range n {
		dc, err := ch.PublishWithDeferredConfirm("", queue, true, false, amqp.Publishing{
			ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: []byte("bench task."),
		})
		if err != nil {
			close(inflight)
			b.Fatal(err)
		}
		inflight <- dc
	}
	close(inflight)
	if bad := <-nacks; bad > 0 {
		b.Fatalf("raw publisher: %d nacks", bad)
	}
	return time.Since(start)
}
