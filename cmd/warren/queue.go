package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// defaultQueue is the Hello World tutorial's queue.
const defaultQueue = "hola"

// newSendCmd is send.py: the arguments joined are the message.
func newSendCmd() *cobra.Command {
	var cf clientFlags
	var queue string
	cmd := &cobra.Command{
		Use:   "send [MESSAGE...]",
		Short: "Send a message to a queue (send.py)",
		Long:  `send publishes its arguments, joined with spaces ("¡Hola Mundo!" without any), to a queue through the gateway's QueueService: the Hello World tutorial's send.py.`,
		Example: `  warren send
  warren send "hi there" --queue other
  warren send -- --not-a-flag`,
		RunE: func(cmd *cobra.Command, args []string) error {
			body := strings.Join(args, " ")
			if body == "" {
				body = "¡Hola Mundo!"
			}
			err := cf.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				_, err := warrenv1.NewQueueServiceClient(conn).Send(ctx, &warrenv1.SendRequest{Queue: queue, Body: body})
				return err
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), " [x] Sent %q\n", body)
			return err
		},
	}
	cf.register(cmd, "deadline of the call")
	cmd.Flags().StringVar(&queue, "queue", defaultQueue, "queue to publish to (declared as the tutorial does if missing)")
	return cmd
}

// newReceiveCmd is receive.py: it prints each message until interrupted.
func newReceiveCmd() *cobra.Command {
	var cf clientFlags
	var queue string
	cmd := &cobra.Command{
		Use:   "receive",
		Short: "Print a queue's messages (receive.py)",
		Long:  "receive consumes a queue through the gateway's QueueService and prints each message until interrupted: the Hello World tutorial's receive.py.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := cf.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			stream, err := warrenv1.NewQueueServiceClient(conn).Receive(ctx, &warrenv1.ReceiveRequest{Queue: queue})
			if err != nil {
				return streamEnd(cmd.Context(), err)
			}
			if err := subscribed(cmd, stream, cancel, cf.timeout, "queue "+queue); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, " [*] Waiting for messages. To exit press CTRL+C")
			for {
				m, err := stream.Recv()
				if err != nil {
					return streamEnd(cmd.Context(), err)
				}
				body := m.GetBody()
				if m.GetRawBody() != nil {
					body = fmt.Sprintf("%x (binary)", m.GetRawBody())
				}
				if _, err := fmt.Fprintf(out, " [x] Received %s\n", body); err != nil {
					return err
				}
			}
		},
	}
	cf.register(cmd, "how long to wait for the subscription")
	cmd.Flags().StringVar(&queue, "queue", defaultQueue, "queue to consume")
	return cmd
}
