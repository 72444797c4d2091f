package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

func newFibCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "fib N",
		Short: "Call FibonacciService.Fibonacci (rpc_client.py)",
		Long:  "fib asks the gateway for fib(N), N from 0 to 100000, and prints it: the RPC tutorial's rpc_client.py.",
		Example: `  warren fib 30
  warren fib 30 --addr 127.0.0.1:6000`,
		Args: exactArgs("N"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil {
				return usagef("want a non-negative integer N, got %q", args[0])
			}
			var resp *warrenv1.FibonacciResponse
			err = cf.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) (err error) {
				resp, err = warrenv1.NewFibonacciServiceClient(conn).Fibonacci(ctx, &warrenv1.FibonacciRequest{N: uint32(n)})
				return err
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), resp.GetValue())
			return err
		},
	}
	cf.register(cmd, "call deadline")
	return cmd
}
