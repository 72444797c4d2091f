package warrentest

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
)

// The bad-input suite's machinery: malformed requests at an RPC of a
// gateway, over a real gRPC connection, as raw bytes so that the client's
// own checks (which refuse to marshal invalid UTF-8, for one) are out of
// the way. After every case the gateway must still be SERVING and answer a
// good call of the same service.
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

// rawCodec passes []byte through unchanged, in both directions.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// RPC shapes.
const (
	BadUnary = iota
	BadServerStream
	BadClientStream
)

// BadCase is one malformed request. msgs are the raw request messages (one
// for unary and server-streaming RPCs). want is the status code; for a
// server stream codes.OK means the stream was set up (response headers
// arrived) before the test cancelled it.
type BadCase struct {
	Name    string
	Method  string
	Kind    int
	Msgs    [][]byte
	Want    codes.Code
	WantMsg string // a substring of the status message, if set
}

// BadMarshal encodes a valid message.
func BadMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BadString encodes field num as a length-delimited field holding s, which
// need not be valid UTF-8.
func BadString(num protowire.Number, s string) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// BadVarint encodes field num as a varint.
func BadVarint(num protowire.Number, v uint64) []byte {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func BadJoin(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

const BadInvalidUTF8 = "ok \xff\xfe not UTF-8"

var (
	// BadGarbage is no protobuf: a truncated length-delimited field.
	BadGarbage = []byte{0x0a, 0xff, 0xff, 0xff, 0x0f, 'x'}
)

// BadHuge returns a string over grpc-go's default 4 MiB receive limit
// (made on demand, so that test binaries do not carry it in their heap).
func BadHuge() string { return strings.Repeat("x", 4<<20+1) }

// runBadCase sends c's messages and returns the status the client saw.
func runBadCase(ctx context.Context, conn *grpc.ClientConn, c BadCase) error {
	opt := grpc.ForceCodecV2(rawCodec{})
	switch c.Kind {
	case BadUnary:
		var out []byte
		return conn.Invoke(ctx, c.Method, &c.Msgs[0], &out, opt)
	case BadServerStream:
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, c.Method, opt)
		if err != nil {
			return err
		}
		if err := s.SendMsg(&c.Msgs[0]); err != nil && !errors.Is(err, io.EOF) {
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
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, c.Method, opt)
		if err != nil {
			return err
		}
		for _, m := range c.Msgs {
			if err := s.SendMsg(&m); err != nil {
				break // the status comes with RecvMsg
			}
		}
		_ = s.CloseSend()
		var out []byte
		return s.RecvMsg(&out)
	}
}

// RunBadCases runs cases one after another on gw; after each one, good
// must succeed and the gateway must still be SERVING.
func RunBadCases(t *testing.T, conn *grpc.ClientConn, cases []BadCase, good func(context.Context) error) {
	t.Helper()
	health := healthpb.NewHealthClient(conn)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := runBadCase(ctx, conn, c)
			if got := status.Code(err); got != c.Want {
				t.Fatalf("got %v (%v), want %v", got, err, c.Want)
			}
			if c.WantMsg != "" && !strings.Contains(status.Convert(err).Message(), c.WantMsg) {
				t.Errorf("got message %q, want it to contain %q", status.Convert(err).Message(), c.WantMsg)
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
