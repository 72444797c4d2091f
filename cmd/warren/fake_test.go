package main

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// fakeGateway serves warren's four services on loopback TCP without a
// broker: it records every request, answers fib(30) and fails larger n as
// the gateway does. Its streams send their header once subscribe is
// closed (at once unless the test holds the headers), then block until the
// call ends.
type fakeGateway struct {
	warrenv1.UnimplementedFibonacciServiceServer
	warrenv1.UnimplementedQueueServiceServer
	warrenv1.UnimplementedTaskServiceServer
	warrenv1.UnimplementedLogServiceServer

	addr      string
	subscribe chan struct{} // closed: streams send their header

	mu       sync.Mutex
	requests []proto.Message
}

func startFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	f := startFakeGatewayHeld(t)
	close(f.subscribe)
	return f
}

// startFakeGatewayHeld starts a fakeGateway whose streams send no header
// before the test closes subscribe.
func startFakeGatewayHeld(t *testing.T) *fakeGateway {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeGateway{addr: lis.Addr().String(), subscribe: make(chan struct{})}
	srv := grpc.NewServer()
	warrenv1.RegisterFibonacciServiceServer(srv, f)
	warrenv1.RegisterQueueServiceServer(srv, f)
	warrenv1.RegisterTaskServiceServer(srv, f)
	warrenv1.RegisterLogServiceServer(srv, f)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(lis) })
	t.Cleanup(func() { srv.Stop(); wg.Wait() })
	return f
}

func (f *fakeGateway) record(m proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, m)
}

// got returns the requests received so far.
func (f *fakeGateway) got() []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proto.Message(nil), f.requests...)
}

func (f *fakeGateway) Fibonacci(_ context.Context, req *warrenv1.FibonacciRequest) (*warrenv1.FibonacciResponse, error) {
	f.record(req)
	switch n := req.GetN(); {
	case n > 100000:
		return nil, status.Error(codes.InvalidArgument, "n must be ≤ 100000")
	case n == 30:
		return &warrenv1.FibonacciResponse{Value: "832040"}, nil
	default:
		return &warrenv1.FibonacciResponse{Value: "fib(" + strconv.Itoa(int(n)) + ")"}, nil
	}
}

func (f *fakeGateway) Send(_ context.Context, req *warrenv1.SendRequest) (*warrenv1.SendResponse, error) {
	f.record(req)
	return &warrenv1.SendResponse{MessageId: "m1"}, nil
}

func (f *fakeGateway) SubmitTask(_ context.Context, req *warrenv1.SubmitTaskRequest) (*warrenv1.SubmitTaskResponse, error) {
	f.record(req)
	id := req.GetIdempotencyKey()
	if id == "" {
		id = "t1"
	}
	return &warrenv1.SubmitTaskResponse{TaskId: id}, nil
}

func (f *fakeGateway) GetQueueStats(_ context.Context, req *warrenv1.GetQueueStatsRequest) (*warrenv1.GetQueueStatsResponse, error) {
	f.record(req)
	return &warrenv1.GetQueueStatsResponse{Queue: "task_queue", MessagesReady: 2, Consumers: 1}, nil
}

func (f *fakeGateway) EmitLog(_ context.Context, req *warrenv1.EmitLogRequest) (*warrenv1.EmitLogResponse, error) {
	f.record(req)
	return &warrenv1.EmitLogResponse{}, nil
}

// stream records req, sends the header once subscribe is closed and waits
// for the caller to go.
func (f *fakeGateway) stream(req proto.Message, s grpc.ServerStream) error {
	f.record(req)
	select {
	case <-f.subscribe:
	case <-s.Context().Done():
		return s.Context().Err()
	}
	if err := s.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	<-s.Context().Done()
	return s.Context().Err()
}

func (f *fakeGateway) SubscribeLogs(req *warrenv1.SubscribeLogsRequest, s grpc.ServerStreamingServer[warrenv1.SubscribeLogsResponse]) error {
	return f.stream(req, s)
}

func (f *fakeGateway) Receive(req *warrenv1.ReceiveRequest, s grpc.ServerStreamingServer[warrenv1.ReceiveResponse]) error {
	return f.stream(req, s)
}

func (f *fakeGateway) WatchTasks(req *warrenv1.WatchTasksRequest, s grpc.ServerStreamingServer[warrenv1.WatchTasksResponse]) error {
	return f.stream(req, s)
}
