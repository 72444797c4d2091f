package worker_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/worker"
)

// taskChildEnv switches the test binary into a tasks worker process: the
// kill -9 tests re-execute os.Args[0] with it set to
// "queue,events exchange,unit in ms".
const taskChildEnv = "WARREN_TEST_TASK_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(taskChildEnv); spec != "" {
		os.Exit(taskChildMain(spec))
	}
	goleak.VerifyTestMain(m)
}

// taskChildMain runs a worker until it is killed. It prints "started BODY"
// when a task starts and "done BODY" when its handler finished, one line
// each, unbuffered, for the parent test to read.
func taskChildMain(spec string) int {
	var queue, events string
	var unitMS int
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "%s=%q: want queue,events,unit_ms\n", taskChildEnv, spec)
		return 2
	}
	queue, events = parts[0], parts[1]
	unitMS, err := strconv.Atoi(parts[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	sleep := worker.TaskSleep(time.Duration(unitMS) * time.Millisecond)
	w := worker.NewTask(worker.TaskConfig{
		Queue: queue, EventsExchange: events, WorkerID: "child",
		Handler: func(ctx context.Context, body []byte) error {
			fmt.Fprintf(os.Stdout, "started %s\n", body)
			if err := sleep(ctx, body); err != nil {
				return err
			}
			fmt.Fprintf(os.Stdout, "done %s\n", body)
			return nil
		},
	})
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = amqpx.DefaultURL
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_ = amqpx.New(amqpx.Config{URLs: []string{url}, Name: "child worker"}, w).Run(ctx)
	return 0
}
