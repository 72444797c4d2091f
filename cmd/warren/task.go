package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// taskAddrDefault is the gateway the task and queue commands call.
const taskAddrDefault = "127.0.0.1:50051"

// taskClientFlags are the flags every gRPC client command takes.
type taskClientFlags struct {
	addr    string
	timeout time.Duration
}

func (f *taskClientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", taskAddrDefault, "gateway address (host:port)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "deadline of a unary call")
}

func (f *taskClientFlags) dial() (*grpc.ClientConn, error) { return dial(f.addr) }

// taskFlagSet returns a flag set that reports to stderr.
func taskFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// taskCommand runs "warren task SUBCOMMAND": submit (new_task.py), watch
// and stats.
func taskCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "warren task submit|watch|stats [flags] ..."
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: %s\n", usage)
		return errors.New("task: missing subcommand")
	}
	switch args[0] {
	case "submit":
		return taskSubmit(ctx, args[1:], stdout, stderr)
	case "watch":
		return taskWatch(ctx, args[1:], stdout, stderr)
	case "stats":
		return taskStats(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "usage: %s\n", usage)
	return fmt.Errorf("task: unknown subcommand %q", args[0])
}

// taskSubmit is new_task.py: the arguments joined are the task, "Hello
// World!" without any; each "." is one unit of work.
func taskSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf taskClientFlags
	fs := taskFlagSet("warren task submit", "warren task submit [--addr HOST:PORT] [--key IDEMPOTENCY_KEY] [MESSAGE...]", stderr)
	cf.register(fs)
	key := fs.String("key", "", "idempotency key: becomes the task id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body := strings.Join(fs.Args(), " ")
	if body == "" {
		body = "Hello World!"
	}
	cc, err := cf.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	resp, err := warrenv1.NewTaskServiceClient(cc).SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: body, IdempotencyKey: *key})
	if err != nil {
		return fmt.Errorf("submit task: %w", err)
	}
	fmt.Fprintf(stdout, " [x] Sent %q (task %s)\n", body, resp.GetTaskId())
	return nil
}

// taskWatch prints task lifecycle events until ctx ends.
func taskWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf taskClientFlags
	fs := taskFlagSet("warren task watch", "warren task watch [--addr HOST:PORT] [--task ID]", stderr)
	cf.register(fs)
	id := fs.String("task", "", "watch only this task id (default: all tasks)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cc, err := cf.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	stream, err := warrenv1.NewTaskServiceClient(cc).WatchTasks(ctx, &warrenv1.WatchTasksRequest{TaskId: *id})
	if err != nil {
		return fmt.Errorf("watch tasks: %w", err)
	}
	if _, err := stream.Header(); err != nil {
		return taskStreamEnd(ctx, "watch tasks", err)
	}
	fmt.Fprintln(stdout, " [*] Watching tasks. To exit press CTRL+C")
	for {
		resp, err := stream.Recv()
		if err != nil {
			return taskStreamEnd(ctx, "watch tasks", err)
		}
		ev := resp.GetEvent()
		line := fmt.Sprintf("%s %s %s attempt=%d",
			ev.GetTime().AsTime().Local().Format("15:04:05.000"), ev.GetTaskId(),
			strings.TrimPrefix(ev.GetState().String(), "TASK_STATE_"), ev.GetAttempt())
		if w := ev.GetWorkerId(); w != "" {
			line += " worker=" + w
		}
		if e := ev.GetError(); e != "" {
			line += fmt.Sprintf(" error=%q", e)
		}
		fmt.Fprintln(stdout, line)
	}
}

// taskStreamEnd turns the end of a stream into the command's result: the
// user's interrupt is a clean exit.
func taskStreamEnd(ctx context.Context, what string, err error) error {
	if errors.Is(err, io.EOF) || ctx.Err() != nil || status.Code(err) == codes.Canceled {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// taskStats prints the task queue's counts as `rabbitmqctl list_queues
// name messages_ready messages_unacknowledged consumers` does.
func taskStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf taskClientFlags
	fs := taskFlagSet("warren task stats", "warren task stats [--addr HOST:PORT]", stderr)
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cc, err := cf.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	st, err := warrenv1.NewTaskServiceClient(cc).GetQueueStats(ctx, &warrenv1.GetQueueStatsRequest{})
	if err != nil {
		return fmt.Errorf("queue stats: %w", err)
	}
	fmt.Fprintln(stdout, "name\tmessages_ready\tmessages_unacknowledged\tconsumers")
	fmt.Fprintf(stdout, "%s\t%d\t%d\t%d\n", st.GetQueue(), st.GetMessagesReady(), st.GetMessagesUnacknowledged(), st.GetConsumers())
	return nil
}

// sendCommand is send.py: "warren send [--queue hola] MESSAGE...".
func sendCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf taskClientFlags
	fs := taskFlagSet("warren send", "warren send [--addr HOST:PORT] [--queue hola] [MESSAGE...]", stderr)
	cf.register(fs)
	queue := fs.String("queue", "hola", "queue to publish to (declared as the tutorial does if missing)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body := strings.Join(fs.Args(), " ")
	if body == "" {
		body = "¡Hola Mundo!"
	}
	cc, err := cf.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	if _, err := warrenv1.NewQueueServiceClient(cc).Send(ctx, &warrenv1.SendRequest{Queue: *queue, Body: body}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	fmt.Fprintf(stdout, " [x] Sent %q\n", body)
	return nil
}

// receiveCommand is receive.py: "warren receive [--queue hola]" prints
// each message until interrupted.
func receiveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf taskClientFlags
	fs := taskFlagSet("warren receive", "warren receive [--addr HOST:PORT] [--queue hola]", stderr)
	cf.register(fs)
	queue := fs.String("queue", "hola", "queue to consume")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cc, err := cf.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	stream, err := warrenv1.NewQueueServiceClient(cc).Receive(ctx, &warrenv1.ReceiveRequest{Queue: *queue})
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if _, err := stream.Header(); err != nil {
		return taskStreamEnd(ctx, "receive", err)
	}
	fmt.Fprintln(stdout, " [*] Waiting for messages. To exit press CTRL+C")
	for {
		m, err := stream.Recv()
		if err != nil {
			return taskStreamEnd(ctx, "receive", err)
		}
		body := m.GetBody()
		if m.GetRawBody() != nil {
			body = fmt.Sprintf("%x (binary)", m.GetRawBody())
		}
		fmt.Fprintf(stdout, " [x] Received %s\n", body)
	}
}
