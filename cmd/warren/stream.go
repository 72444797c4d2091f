package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// subscribed waits for a stream's response header, which warren's gateway
// sends once the stream's queue is bound (log tail, task watch) or
// consumed (receive), so that whatever is published afterwards reaches the
// stream. Then it says so on stderr: "warren: log tail: subscribed to …",
// the line a script waits for before it publishes. cancel ends the
// stream's context; subscribed calls it when no header came within
// timeout.
func subscribed[T any](cmd *cobra.Command, stream grpc.ServerStreamingClient[T], cancel context.CancelFunc, timeout time.Duration, what string) error {
	timer := time.AfterFunc(timeout, cancel)
	md, err := stream.Header()
	if err == nil && md == nil {
		// The stream ended before its header; Recv tells how.
		_, err = stream.Recv()
	}
	if !timer.Stop() && cmd.Context().Err() == nil {
		return &rpcError{status.Newf(codes.DeadlineExceeded, "not subscribed within %v", timeout)}
	}
	if err != nil {
		return streamEnd(cmd.Context(), err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "warren: %s: subscribed to %s\n", commandPath(cmd), what)
	return nil
}

// streamEnd turns the end of a stream into the command's result: nil when
// the user ended it (ctx, the command's context, is done).
func streamEnd(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, io.EOF):
		return errors.New("the gateway ended the stream")
	}
	return callError(err)
}
