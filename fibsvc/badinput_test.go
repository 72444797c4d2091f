package fibsvc_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/fibsvc"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/fib"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestBadInputFibonacci: malformed requests at FibonacciService, as raw
// bytes (see warrentest.RunBadCases); a good call is served after each.
func TestBadInputFibonacci(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	runFib(t, fibsvc.WorkerConfig{Queue: queue})
	gw := startRPCGateway(t, gwConfig{RPCQueue: queue})
	const m = "/warren.v1.FibonacciService/Fibonacci"
	cases := []warrentest.BadCase{
		{Name: "empty request is n=0", Method: m, Msgs: [][]byte{nil}, Want: codes.OK},
		{Name: "n just over the maximum", Method: m, Msgs: [][]byte{warrentest.BadVarint(1, fib.MaxN+1)}, Want: codes.InvalidArgument, WantMsg: "larger than"},
		{Name: "n the largest uint32", Method: m, Msgs: [][]byte{warrentest.BadVarint(1, 1<<32-1)}, Want: codes.InvalidArgument},
		// proto3 truncates a 64-bit varint to the uint32 field: 2^32+100001 is 100001.
		{Name: "n a 64-bit varint", Method: m, Msgs: [][]byte{warrentest.BadVarint(1, 1<<32+fib.MaxN+1)}, Want: codes.InvalidArgument},
		{Name: "n of the wrong wire type is an unknown field", Method: m, Msgs: [][]byte{warrentest.BadString(1, "30")}, Want: codes.OK},
		{Name: "unknown fields only", Method: m, Msgs: [][]byte{warrentest.BadJoin(warrentest.BadVarint(7, 1), warrentest.BadString(8, "x"))}, Want: codes.OK},
		{Name: "over 4 MiB", Method: m, Msgs: [][]byte{warrentest.BadString(9, warrentest.BadHuge())}, Want: codes.ResourceExhausted, WantMsg: "larger than max"},
		{Name: "unknown field with invalid UTF-8 is kept as bytes", Method: m, Msgs: [][]byte{warrentest.BadString(9, warrentest.BadInvalidUTF8)}, Want: codes.OK},
		{Name: "garbage bytes", Method: m, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.Internal, WantMsg: "unmarshal"},
	}
	client := warrenv1.NewFibonacciServiceClient(gw.conn)
	warrentest.RunBadCases(t, gw.conn, cases, func(ctx context.Context) error {
		resp, err := client.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
		if err == nil && resp.GetValue() != "832040" {
			err = errors.New("fib(30) = " + resp.GetValue())
		}
		return err
	})
}
