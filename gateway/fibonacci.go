package gateway

import (
	"context"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/fib"
)

// fibonacciService implements warren.v1.FibonacciService over an rpcClient.
type fibonacciService struct {
	warrenv1.UnimplementedFibonacciServiceServer
	rpc *rpcClient
}

// Fibonacci checks n, sends it to a worker as the tutorial's decimal text and
// returns the worker's decimal reply.
func (f *fibonacciService) Fibonacci(ctx context.Context, req *warrenv1.FibonacciRequest) (*warrenv1.FibonacciResponse, error) {
	if req.GetN() > fib.MaxN {
		return nil, status.Errorf(codes.InvalidArgument, "n = %d is larger than %d", req.GetN(), fib.MaxN)
	}
	var buf [10]byte
	d, err := f.rpc.Call(ctx, strconv.AppendUint(buf[:0], uint64(req.GetN()), 10))
	if err != nil {
		return nil, toStatus(err)
	}
	if !isDecimal(d.Body) {
		// A foreign worker answered something else; never pass it on as
		// a value (nor as invalid UTF-8 in a proto string).
		return nil, status.Errorf(codes.Internal, "worker replied with a body that is not a decimal number (%d bytes)", len(d.Body))
	}
	return &warrenv1.FibonacciResponse{Value: string(d.Body)}, nil
}

func isDecimal(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
