package gateway

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/fib"
)

// The bad-input suite: malformed requests at every RPC of a full gateway,
// over a real gRPC connection, as raw bytes so that the client's own
// checks (which refuse to marshal invalid UTF-8, for one) are out of the
// way. After every case the gateway must still be SERVING and answer a good
// call of the same service.
//
// What a client sees, documented here:
//   - a request over 4 MiB (grpc-go's default receive limit, which the
//     gateway keeps): RESOURCE_EXHAUSTED "grpc: received message larger than
//     max", before any handler runs;
//   - invalid UTF-8 in a string field, or bytes that are no protobuf:
//     INTERNAL "grpc: failed to unmarshal the received message: ...".
//     grpc-go fixes that code for every codec error (rpc_util.go, recv), so
//     the gateway cannot turn it into INVALID_ARGUMENT short of declaring
//     the fields as bytes;
//   - everything the gateway checks itself: INVALID_ARGUMENT, or
//     PERMISSION_DENIED for a reserved "amq." queue name, which the broker
//     refuses.

// badRawCodec passes []byte through unchanged, in both directions.
type badRawCodec struct{}

func (badRawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (badRawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (badRawCodec) Name() string { return "proto" }

// RPC shapes.
const (
	badUnary = iota
	badServerStream
	badClientStream
)

// badCase is one malformed request. msgs are the raw request messages (one
// for unary and server-streaming RPCs). want is the status code; for a
// server stream codes.OK means the stream was set up (response headers
// arrived) before the test cancelled it.
type badCase struct {
	name    string
	method  string
	kind    int
	msgs    [][]byte
	want    codes.Code
	wantMsg string // a substring of the status message, if set
}

// badMarshal encodes a valid message.
func badMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// badString encodes field num as a length-delimited field holding s, which
// need not be valid UTF-8.
func badString(num protowire.Number, s string) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// badVarint encodes field num as a varint.
func badVarint(num protowire.Number, v uint64) []byte {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func badJoin(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

const badInvalidUTF8 = "ok \xff\xfe not UTF-8"

var (
	// badGarbage is no protobuf: a truncated length-delimited field.
	badGarbage = []byte{0x0a, 0xff, 0xff, 0xff, 0x0f, 'x'}
	// badHuge is over grpc-go's default 4 MiB receive limit.
	badHuge = strings.Repeat("x", 4<<20+1)
)

// runBadCase sends c's messages and returns the status the client saw.
func runBadCase(ctx context.Context, conn *grpc.ClientConn, c badCase) error {
	opt := grpc.ForceCodecV2(badRawCodec{})
	switch c.kind {
	case badUnary:
		var out []byte
		return conn.Invoke(ctx, c.method, &c.msgs[0], &out, opt)
	case badServerStream:
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, c.method, opt)
		if err != nil {
			return err
		}
		if err := s.SendMsg(&c.msgs[0]); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if err := s.CloseSend(); err != nil {
			return err
		}
		md, err := s.Header()
		if err == nil && md != nil {
			return nil // set up; the cancel ends it
		}
		var out []byte
		err = s.RecvMsg(&out)
		if err == nil || errors.Is(err, io.EOF) {
			return errors.New("stream ended without headers and without an error")
		}
		return err
	default: // client stream
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, c.method, opt)
		if err != nil {
			return err
		}
		for _, m := range c.msgs {
			if err := s.SendMsg(&m); err != nil {
				break // the status comes with RecvMsg
			}
		}
		_ = s.CloseSend()
		var out []byte
		return s.RecvMsg(&out)
	}
}

// runBadCases runs cases one after another on gw; after each one, good
// must succeed and the gateway must still be SERVING.
func runBadCases(t *testing.T, gw *rpcTestGateway, cases []badCase, good func(context.Context) error) {
	t.Helper()
	health := healthpb.NewHealthClient(gw.conn)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := runBadCase(ctx, gw.conn, c)
			if got := status.Code(err); got != c.want {
				t.Fatalf("got %v (%v), want %v", got, err, c.want)
			}
			if c.wantMsg != "" && !strings.Contains(status.Convert(err).Message(), c.wantMsg) {
				t.Errorf("got message %q, want it to contain %q", status.Convert(err).Message(), c.wantMsg)
			}
			if err != nil {
				t.Logf("%v: %.160s", status.Code(err), status.Convert(err).Message())
			}
			resp, herr := health.Check(ctx, &healthpb.HealthCheckRequest{})
			if herr != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health after the case: %v, %v; want SERVING", resp.GetStatus(), herr)
			}
			if err := good(ctx); err != nil {
				t.Fatalf("a good call after the case: %v", err)
			}
		})
	}
	t.Logf("%d cases", len(cases))
}

func TestBadInputFibonacci(t *testing.T) {
	t.Parallel()
	names := newTaskFaultNames(t)
	startFibWorker(t, names.rpc)
	gw := startRPCGateway(t, names.config())
	const m = "/warren.v1.FibonacciService/Fibonacci"
	cases := []badCase{
		{name: "empty request is n=0", method: m, msgs: [][]byte{nil}, want: codes.OK},
		{name: "n just over the maximum", method: m, msgs: [][]byte{badVarint(1, fib.MaxN+1)}, want: codes.InvalidArgument, wantMsg: "larger than"},
		{name: "n the largest uint32", method: m, msgs: [][]byte{badVarint(1, 1<<32-1)}, want: codes.InvalidArgument},
		// proto3 truncates a 64-bit varint to the uint32 field: 2^32+100001 is 100001.
		{name: "n a 64-bit varint", method: m, msgs: [][]byte{badVarint(1, 1<<32+fib.MaxN+1)}, want: codes.InvalidArgument},
		{name: "n of the wrong wire type is an unknown field", method: m, msgs: [][]byte{badString(1, "30")}, want: codes.OK},
		{name: "unknown fields only", method: m, msgs: [][]byte{badJoin(badVarint(7, 1), badString(8, "x"))}, want: codes.OK},
		{name: "over 4 MiB", method: m, msgs: [][]byte{badString(9, badHuge)}, want: codes.ResourceExhausted, wantMsg: "larger than max"},
		{name: "unknown field with invalid UTF-8 is kept as bytes", method: m, msgs: [][]byte{badString(9, badInvalidUTF8)}, want: codes.OK},
		{name: "garbage bytes", method: m, msgs: [][]byte{badGarbage}, want: codes.Internal, wantMsg: "unmarshal"},
	}
	client := warrenv1.NewFibonacciServiceClient(gw.conn)
	runBadCases(t, gw, cases, func(ctx context.Context) error {
		resp, err := client.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
		if err == nil && resp.GetValue() != "832040" {
			err = errors.New("fib(30) = " + resp.GetValue())
		}
		return err
	})
}

func TestBadInputTaskService(t *testing.T) {
	t.Parallel()
	names := newTaskFaultNames(t)
	gw := startRPCGateway(t, names.config())
	const (
		submit = "/warren.v1.TaskService/SubmitTask"
		watch  = "/warren.v1.TaskService/WatchTasks"
		stats  = "/warren.v1.TaskService/GetQueueStats"
	)
	sub := func(body, key string) []byte {
		return badMarshal(t, &warrenv1.SubmitTaskRequest{Body: body, IdempotencyKey: key})
	}
	cases := []badCase{
		{name: "submit empty request", method: submit, msgs: [][]byte{nil}, want: codes.OK},
		{name: "submit idempotency key at the limit", method: submit, msgs: [][]byte{sub("x", strings.Repeat("k", taskMaxIDLen))}, want: codes.OK},
		{name: "submit idempotency key over the limit", method: submit, msgs: [][]byte{sub("x", strings.Repeat("k", taskMaxIDLen+1))}, want: codes.InvalidArgument, wantMsg: "longer than"},
		{name: "submit idempotency key of wildcards", method: submit, msgs: [][]byte{sub("x", "#.*")}, want: codes.OK},
		{name: "submit body of 3 MiB", method: submit, msgs: [][]byte{sub(strings.Repeat(".", 3<<20), "")}, want: codes.OK},
		{name: "submit body over 4 MiB", method: submit, msgs: [][]byte{sub(badHuge, "")}, want: codes.ResourceExhausted, wantMsg: "larger than max"},
		{name: "submit body invalid UTF-8", method: submit, msgs: [][]byte{badString(1, badInvalidUTF8)}, want: codes.Internal, wantMsg: "invalid UTF-8"},
		{name: "submit idempotency key invalid UTF-8", method: submit, msgs: [][]byte{badString(2, badInvalidUTF8)}, want: codes.Internal, wantMsg: "invalid UTF-8"},
		{name: "submit garbage bytes", method: submit, msgs: [][]byte{badGarbage}, want: codes.Internal},
		{name: "watch empty request", method: watch, kind: badServerStream, msgs: [][]byte{nil}, want: codes.OK},
		{name: "watch task id of wildcards", method: watch, kind: badServerStream, msgs: [][]byte{badString(1, "#")}, want: codes.OK},
		{name: "watch task id over 200 bytes", method: watch, kind: badServerStream, msgs: [][]byte{badString(1, strings.Repeat("k", taskMaxIDLen+1))}, want: codes.InvalidArgument},
		{name: "watch task id invalid UTF-8", method: watch, kind: badServerStream, msgs: [][]byte{badString(1, badInvalidUTF8)}, want: codes.Internal, wantMsg: "invalid UTF-8"},
		{name: "watch over 4 MiB", method: watch, kind: badServerStream, msgs: [][]byte{badString(1, badHuge)}, want: codes.ResourceExhausted},
		{name: "stats with unknown fields", method: stats, msgs: [][]byte{badVarint(5, 1)}, want: codes.OK},
		{name: "stats garbage bytes", method: stats, msgs: [][]byte{badGarbage}, want: codes.Internal},
	}
	client := warrenv1.NewTaskServiceClient(gw.conn)
	runBadCases(t, gw, cases, func(ctx context.Context) error {
		_, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "good."})
		return err
	})
}

func TestBadInputQueueService(t *testing.T) {
	t.Parallel()
	names := newTaskFaultNames(t)
	gw := startRPCGateway(t, names.config())
	queue := brokertest.Name(t, "hola")
	const (
		send = "/warren.v1.QueueService/Send"
		recv = "/warren.v1.QueueService/Receive"
	)
	// Requests without a queue name would use the tutorial's "hola", which
	// other tests share: every case names a queue of its own.
	cases := []badCase{
		{name: "send empty body", method: send, msgs: [][]byte{badString(1, queue)}, want: codes.OK},
		{name: "send queue name of 255 bytes", method: send, msgs: [][]byte{badString(1, queue+strings.Repeat("q", 255-len(queue)))}, want: codes.OK},
		{name: "send queue name over 255 bytes", method: send, msgs: [][]byte{badString(1, queue+strings.Repeat("q", 256-len(queue)))}, want: codes.InvalidArgument},
		{name: "send reserved queue name", method: send, msgs: [][]byte{badString(1, "amq.warren-test")}, want: codes.PermissionDenied},
		{name: "send queue name invalid UTF-8", method: send, msgs: [][]byte{badString(1, badInvalidUTF8)}, want: codes.Internal, wantMsg: "invalid UTF-8"},
		{name: "send body invalid UTF-8", method: send, msgs: [][]byte{badJoin(badString(1, queue), badString(2, badInvalidUTF8))}, want: codes.Internal, wantMsg: "invalid UTF-8"},
		{name: "send over 4 MiB", method: send, msgs: [][]byte{badJoin(badString(1, queue), badString(2, badHuge))}, want: codes.ResourceExhausted},
		{name: "send garbage bytes", method: send, msgs: [][]byte{badGarbage}, want: codes.Internal},
		{name: "receive queue name over 255 bytes", method: recv, kind: badServerStream, msgs: [][]byte{badString(1, strings.Repeat("q", 256))}, want: codes.InvalidArgument},
		{name: "receive reserved queue name", method: recv, kind: badServerStream, msgs: [][]byte{badString(1, "amq.warren-test")}, want: codes.PermissionDenied},
		{name: "receive queue name invalid UTF-8", method: recv, kind: badServerStream, msgs: [][]byte{badString(1, badInvalidUTF8)}, want: codes.Internal},
		{name: "receive over 4 MiB", method: recv, kind: badServerStream, msgs: [][]byte{badString(1, badHuge)}, want: codes.ResourceExhausted},
	}
	t.Cleanup(func() {
		deleteQueues(brokertest.URL(), queue+strings.Repeat("q", 255-len(queue)))
	})
	client := warrenv1.NewQueueServiceClient(gw.conn)
	runBadCases(t, gw, cases, func(ctx context.Context) error {
		_, err := client.Send(ctx, &warrenv1.SendRequest{Queue: queue, Body: "good"})
		return err
	})
}

func TestBadInputLogService(t *testing.T) {
	t.Parallel()
	names := newTaskFaultNames(t)
	gw := startRPCGateway(t, names.config())
	const (
		emit  = "/warren.v1.LogService/EmitLog"
		emits = "/warren.v1.LogService/EmitLogs"
		sub   = "/warren.v1.LogService/SubscribeLogs"
	)
	topic := int32(warrenv1.LogExchange_LOG_EXCHANGE_TOPIC)
	direct := int32(warrenv1.LogExchange_LOG_EXCHANGE_DIRECT)
	ex := func(e int32) []byte { return badVarint(1, uint64(int64(e))) }
	long := strings.Repeat("k", 256)
	subKeys := func(e int32, keys ...string) []byte {
		b := ex(e)
		for _, k := range keys {
			b = append(b, badString(2, k)...)
		}
		return b
	}
	many := make([]string, 1000)
	for i := range many {
		many[i] = "k"
	}
	cases := []badCase{
		{name: "emit empty request", method: emit, msgs: [][]byte{nil}, want: codes.OK},
		{name: "emit unknown exchange", method: emit, msgs: [][]byte{ex(99)}, want: codes.InvalidArgument},
		{name: "emit negative exchange", method: emit, msgs: [][]byte{ex(-1)}, want: codes.InvalidArgument},
		{name: "emit routing key over 255 bytes", method: emit, msgs: [][]byte{badJoin(ex(topic), badString(2, long))}, want: codes.InvalidArgument},
		{name: "emit routing key invalid UTF-8", method: emit, msgs: [][]byte{badJoin(ex(topic), badString(2, badInvalidUTF8))}, want: codes.Internal},
		{name: "emit body invalid UTF-8", method: emit, msgs: [][]byte{badString(3, badInvalidUTF8)}, want: codes.Internal},
		{name: "emit over 4 MiB", method: emit, msgs: [][]byte{badString(3, badHuge)}, want: codes.ResourceExhausted},
		{name: "emit garbage bytes", method: emit, msgs: [][]byte{badGarbage}, want: codes.Internal},
		{name: "emits no messages", method: emits, kind: badClientStream, msgs: nil, want: codes.OK},
		{name: "emits unknown exchange", method: emits, kind: badClientStream, msgs: [][]byte{nil, ex(99)}, want: codes.InvalidArgument},
		{name: "emits routing key over 255 bytes", method: emits, kind: badClientStream, msgs: [][]byte{badJoin(ex(direct), badString(2, long))}, want: codes.InvalidArgument},
		{name: "emits invalid UTF-8 mid-stream", method: emits, kind: badClientStream, msgs: [][]byte{nil, badString(3, badInvalidUTF8), nil}, want: codes.Internal},
		{name: "emits message over 4 MiB", method: emits, kind: badClientStream, msgs: [][]byte{nil, badString(3, badHuge)}, want: codes.ResourceExhausted},
		{name: "subscribe fanout, no keys", method: sub, kind: badServerStream, msgs: [][]byte{nil}, want: codes.OK},
		{name: "subscribe direct without keys", method: sub, kind: badServerStream, msgs: [][]byte{ex(direct)}, want: codes.InvalidArgument},
		{name: "subscribe topic key mixing wildcards", method: sub, kind: badServerStream, msgs: [][]byte{subKeys(topic, "kern*")}, want: codes.InvalidArgument},
		{name: "subscribe topic key over 255 bytes", method: sub, kind: badServerStream, msgs: [][]byte{subKeys(topic, long)}, want: codes.InvalidArgument},
		{name: "subscribe direct key over 255 bytes", method: sub, kind: badServerStream, msgs: [][]byte{subKeys(direct, long)}, want: codes.InvalidArgument},
		{name: "subscribe too many keys", method: sub, kind: badServerStream, msgs: [][]byte{subKeys(direct, many...)}, want: codes.InvalidArgument},
		{name: "subscribe unknown exchange", method: sub, kind: badServerStream, msgs: [][]byte{ex(99)}, want: codes.InvalidArgument},
		{name: "subscribe key invalid UTF-8", method: sub, kind: badServerStream, msgs: [][]byte{subKeys(direct, badInvalidUTF8)}, want: codes.Internal},
		{name: "subscribe over 4 MiB", method: sub, kind: badServerStream, msgs: [][]byte{subKeys(direct, badHuge)}, want: codes.ResourceExhausted},
	}
	client := warrenv1.NewLogServiceClient(gw.conn)
	runBadCases(t, gw, cases, func(ctx context.Context) error {
		_, err := client.EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: "kern.info", Body: "good"})
		return err
	})
}
