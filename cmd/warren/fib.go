package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// dial connects a client command to the gateway.
func dial(addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return conn, nil
}

// callError renders a gRPC error as "CODE: message".
func callError(err error) error {
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%v: %s", s.Code(), s.Message())
	}
	return err
}

func fibCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fib", "N", stderr)
	addr := fs.String("addr", defaultAddr, "gateway address")
	timeout := fs.Duration("timeout", 10*time.Second, "call deadline")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	n, err := strconv.ParseUint(fs.Arg(0), 10, 32)
	if err != nil {
		return fmt.Errorf("want a non-negative integer N, got %q", fs.Arg(0))
	}
	conn, err := dial(*addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := warrenv1.NewFibonacciServiceClient(conn).Fibonacci(ctx, &warrenv1.FibonacciRequest{N: uint32(n)})
	if err != nil {
		return callError(err)
	}
	fmt.Fprintln(stdout, resp.GetValue())
	return nil
}
