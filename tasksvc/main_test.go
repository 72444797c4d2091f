package tasksvc_test

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

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// childEnv switches the test binary into a tasks worker process: the
// kill -9 tests re-execute os.Args[0] with it set to
// "queue,events exchange,unit in ms".
const childEnv = "WARREN_TEST_TASK_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childMain(spec))
	}
	goleak.VerifyTestMain(m)
}

// childMain runs a worker until it is killed. It prints "started BODY"
// when a task starts and "done BODY" when its handler finished, one line
// each, unbuffered, for the parent test to read.
func childMain(spec string) int {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "%s=%q: want queue,events,unit_ms\n", childEnv, spec)
		return 2
	}
	queue, events := parts[0], parts[1]
	unitMS, err := strconv.Atoi(parts[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	sleep := tasksvc.Sleep(time.Duration(unitMS) * time.Millisecond)
	w := tasksvc.NewWorker(tasksvc.WorkerConfig{
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
		url = core.DefaultURL
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_ = worker.NewGroup(worker.Config{AMQP: core.Config{URLs: []string{url}, Name: "child worker"}}, w).Run(ctx)
	return 0
}
