package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

func newTaskCmd() *cobra.Command {
	return newGroup("task", "Submit, watch or count tasks (new_task.py)",
		newTaskSubmitCmd(), newTaskWatchCmd(), newTaskStatsCmd())
}

// newTaskSubmitCmd is new_task.py: the arguments joined are the task,
// "Hello World!" without any; each "." is one unit of work.
func newTaskSubmitCmd() *cobra.Command {
	var cf clientFlags
	var key string
	cmd := &cobra.Command{
		Use:   "submit [MESSAGE...]",
		Short: "Submit a task (new_task.py)",
		Long: `submit hands its arguments, joined with spaces ("Hello World!" without any),
to the task workers: the Work Queues tutorial's new_task.py. Each "." in the
task is one unit of work.`,
		Example: `  warren task submit Hola...
  warren task submit "job" --key abc`,
		RunE: func(cmd *cobra.Command, args []string) error {
			body := strings.Join(args, " ")
			if body == "" {
				body = "Hello World!"
			}
			var resp *warrenv1.SubmitTaskResponse
			err := cf.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) (err error) {
				resp, err = warrenv1.NewTaskServiceClient(conn).SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: body, IdempotencyKey: key})
				return err
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), " [x] Sent %q (task %s)\n", body, resp.GetTaskId())
			return err
		},
	}
	cf.register(cmd, "deadline of the call")
	cmd.Flags().StringVar(&key, "key", "", "idempotency key: becomes the task id")
	return cmd
}

// newTaskWatchCmd prints task lifecycle events until interrupted.
func newTaskWatchCmd() *cobra.Command {
	var cf clientFlags
	var id string
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print what the workers do with tasks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := cf.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			stream, err := warrenv1.NewTaskServiceClient(conn).WatchTasks(ctx, &warrenv1.WatchTasksRequest{TaskId: id})
			if err != nil {
				return streamEnd(cmd.Context(), err)
			}
			what := "the events of every task"
			if id != "" {
				what = "the events of task " + id
			}
			if err := subscribed(cmd, stream, cancel, cf.timeout, what); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, " [*] Watching tasks. To exit press CTRL+C")
			for {
				resp, err := stream.Recv()
				if err != nil {
					return streamEnd(cmd.Context(), err)
				}
				if _, err := fmt.Fprintln(out, eventLine(resp.GetEvent())); err != nil {
					return err
				}
			}
		},
	}
	cf.register(cmd, "how long to wait for the subscription")
	cmd.Flags().StringVar(&id, "task", "", "watch only this task id (default: all tasks)")
	return cmd
}

// eventLine reads "15:04:05.000 ID STATE attempt=N [worker=W] [error=E]".
func eventLine(ev *warrenv1.TaskEvent) string {
	line := fmt.Sprintf("%s %s %s attempt=%d",
		ev.GetTime().AsTime().Local().Format("15:04:05.000"), ev.GetTaskId(),
		strings.TrimPrefix(ev.GetState().String(), "TASK_STATE_"), ev.GetAttempt())
	if w := ev.GetWorkerId(); w != "" {
		line += " worker=" + w
	}
	if e := ev.GetError(); e != "" {
		line += fmt.Sprintf(" error=%q", e)
	}
	return line
}

// newTaskStatsCmd prints the task queue's counts as `rabbitmqctl
// list_queues name messages_ready messages_unacknowledged consumers` does.
func newTaskStatsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Print the task queue's message and consumer counts (rabbitmqctl list_queues)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st *warrenv1.GetQueueStatsResponse
			err := cf.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) (err error) {
				st, err = warrenv1.NewTaskServiceClient(conn).GetQueueStats(ctx, &warrenv1.GetQueueStatsRequest{})
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "name\tmessages_ready\tmessages_unacknowledged\tconsumers")
			_, err = fmt.Fprintf(out, "%s\t%d\t%d\t%d\n", st.GetQueue(), st.GetMessagesReady(), st.GetMessagesUnacknowledged(), st.GetConsumers())
			return err
		},
	}
	cf.register(cmd, "deadline of the call")
	return cmd
}
