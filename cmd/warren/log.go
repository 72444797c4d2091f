package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

func newLogCmd() *cobra.Command {
	return newGroup("log", "Emit logs or tail them (emit_log*.py, receive_logs*.py)",
		newLogEmitCmd(), newLogTailCmd())
}

// logExchanges are the --exchange words and their LogService exchanges.
var logExchanges = map[string]warrenv1.LogExchange{
	"fanout": warrenv1.LogExchange_LOG_EXCHANGE_FANOUT,
	"direct": warrenv1.LogExchange_LOG_EXCHANGE_DIRECT,
	"topic":  warrenv1.LogExchange_LOG_EXCHANGE_TOPIC,
}

func exchangeFlag(cmd *cobra.Command, p *string) {
	enumFlag(cmd, p, "exchange", "fanout", "log exchange: fanout (the tutorial's logs), direct (direct_logs) or topic (topic_logs)", "fanout", "direct", "topic")
}

func newLogEmitCmd() *cobra.Command {
	var cf clientFlags
	var exchange, key string
	cmd := &cobra.Command{
		Use:   "emit [MESSAGE...]",
		Short: "Publish a log message (emit_log.py, emit_log_direct.py, emit_log_topic.py)",
		Long: `emit publishes its arguments, joined with spaces, to a log exchange: the
tutorials' emit_log.py, emit_log_direct.py and emit_log_topic.py. Without
arguments the message is "info: Hello World!" (fanout) or "Hello World!"; the
routing key defaults to "info" (direct) or "anonymous.info" (topic).`,
		Example: `  warren log emit
  warren log emit "Run. Run. Or it will explode." --exchange direct --routing-key error
  warren log emit --exchange topic --routing-key kern.critical A critical kernel error`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ex := logExchanges[exchange]
			message := strings.Join(args, " ")
			switch ex {
			case warrenv1.LogExchange_LOG_EXCHANGE_FANOUT:
				if message == "" {
					message = "info: Hello World!"
				}
			case warrenv1.LogExchange_LOG_EXCHANGE_DIRECT:
				if key == "" {
					key = "info"
				}
			case warrenv1.LogExchange_LOG_EXCHANGE_TOPIC:
				if key == "" {
					key = "anonymous.info"
				}
			}
			if message == "" {
				message = "Hello World!"
			}
			err := cf.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				_, err := warrenv1.NewLogServiceClient(conn).EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: ex, RoutingKey: key, Body: message})
				return err
			})
			if err != nil {
				return err
			}
			if ex == warrenv1.LogExchange_LOG_EXCHANGE_FANOUT {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), " [x] Sent %s\n", message)
			} else {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), " [x] Sent %s:%s\n", key, message)
			}
			return err
		},
	}
	cf.register(cmd, "deadline of the call, including the broker's confirm")
	exchangeFlag(cmd, &exchange)
	cmd.Flags().StringVar(&key, "routing-key", "", `routing key (default "info" for direct, "anonymous.info" for topic; ignored by fanout)`)
	return cmd
}

func newLogTailCmd() *cobra.Command {
	var cf clientFlags
	var exchange, from string
	var offsets bool
	cmd := &cobra.Command{
		Use:   "tail [BINDING_KEY...]",
		Short: "Print log messages as they come (receive_logs.py, receive_logs_direct.py, receive_logs_topic.py)",
		Long: `tail subscribes to a log exchange and prints one line per message,
"[routing_key] body", on stdout until interrupted: the tutorials'
receive_logs.py, receive_logs_direct.py and receive_logs_topic.py. The direct
and topic exchanges need at least one binding key: severities for direct,
patterns such as "kern.*" or "#" for topic.

Once the subscription's queue is bound, tail says so on stderr ("warren: log
tail: subscribed to …"); messages emitted before that line do not reach it,
unless --from starts it in the log history of a gateway that keeps one
(warren gateway --log-history): first, last, an offset, or an RFC 3339 time.
--offsets prints each message's offset in that history first; a tail that
was cut off resumes with --from set to the last offset it printed plus one.`,
		Example: `  warren log tail
  warren log tail --exchange direct warning error > logs_from_rabbit.log
  warren log tail --exchange topic 'kern.*' '*.critical'
  warren log tail --exchange topic --from first --offsets '#'`,
		RunE: func(cmd *cobra.Command, keys []string) error {
			ex := logExchanges[exchange]
			if ex != warrenv1.LogExchange_LOG_EXCHANGE_FANOUT && len(keys) == 0 {
				return usagef("the %s exchange needs at least one binding key", exchange)
			}
			req := &warrenv1.SubscribeLogsRequest{Exchange: ex, BindingKeys: keys}
			if from != "" {
				if err := parseFrom(from, req); err != nil {
					return err
				}
			}
			conn, err := cf.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			stream, err := warrenv1.NewLogServiceClient(conn).SubscribeLogs(ctx, req)
			if err != nil {
				return streamEnd(cmd.Context(), err)
			}
			what := "the " + exchange + " exchange"
			if len(keys) > 0 {
				what += " with binding keys " + strings.Join(keys, ", ")
			}
			if err := subscribed(cmd, stream, cancel, cf.timeout, what); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), " [*] Waiting for logs. To exit press CTRL+C")
			out := cmd.OutOrStdout()
			for {
				m, err := stream.Recv()
				if err != nil {
					return streamEnd(cmd.Context(), err)
				}
				body := m.GetBody()
				if len(m.GetRawBody()) > 0 {
					body = string(m.GetRawBody())
				}
				if offsets && m.Offset != nil {
					if _, err := fmt.Fprintf(out, "%d ", m.GetOffset()); err != nil {
						return err
					}
				}
				if _, err := fmt.Fprintf(out, "[%s] %s\n", m.GetRoutingKey(), body); err != nil {
					return err
				}
			}
		},
	}
	cf.register(cmd, "how long to wait for the subscription")
	exchangeFlag(cmd, &exchange)
	cmd.Flags().StringVar(&from, "from", "", "start in the gateway's log history: first, last, an offset (a number) or an RFC 3339 time")
	cmd.Flags().BoolVar(&offsets, "offsets", false, "print each message's offset in the log history before it")
	return cmd
}

// parseFrom sets req's start from --from: first, last, an offset or an
// RFC 3339 time.
func parseFrom(s string, req *warrenv1.SubscribeLogsRequest) error {
	switch s {
	case "first":
		req.Start = &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_FIRST}
		return nil
	case "last":
		req.Start = &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_LAST}
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return usagef("--from %d: offsets start at 0", n)
		}
		req.Start = &warrenv1.SubscribeLogsRequest_StartOffset{StartOffset: n}
		return nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		req.Start = &warrenv1.SubscribeLogsRequest_StartTime{StartTime: timestamppb.New(t)}
		return nil
	}
	return usagef("--from %q: want first, last, an offset or an RFC 3339 time such as 2026-11-30T08:00:00Z", s)
}
