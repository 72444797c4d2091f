package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/tasksvc"
)

// taskWindow is the concurrency of SubmitTask calls and the in-flight window
// of the raw publisher.
const taskWindow = 64

// rawConfirmed is the baseline publisher: persistent publishings to the same
// durable queue on one confirm-mode channel, each caller waiting for its own
// confirm, so at most taskWindow are in flight.
type rawConfirmed struct {
	conn  *amqp.Connection
	ch    *amqp.Channel
	queue string
}

func newRawConfirmed(url, queue string) (*rawConfirmed, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &rawConfirmed{conn: conn, ch: ch, queue: queue}, nil
}

var taskBody = []byte("Hola...")

func (r *rawConfirmed) call(ctx context.Context) error {
	dc, err := r.ch.PublishWithDeferredConfirmWithContext(ctx, "", r.queue, true, false, amqp.Publishing{
		ContentType:  "text/plain",
		DeliveryMode: amqp.Persistent,
		Body:         taskBody,
	})
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("nacked")
	}
	return nil
}

// taskTarget is a warren gateway serving SubmitTask on loopback TCP.
type taskTarget struct {
	client warrenv1.TaskServiceClient
	close  func()
}

func startTaskGateway(url, queue string) (*taskTarget, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := gateway.New(gateway.Config{
		AMQP:   core.Config{URLs: []string{url}, Name: "warren-bench-gateway"},
		Logger: quiet,
	}, []gateway.Service{tasksvc.New(tasksvc.Config{Queue: queue, EventsExchange: queue + ".events"})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, lis); close(done) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		<-done
		return nil, err
	}
	t := &taskTarget{client: warrenv1.NewTaskServiceClient(conn), close: func() { _ = conn.Close(); cancel(); <-done }}
	for range 500 {
		if srv.Connected() {
			return t, nil
		}
		sleep()
	}
	t.close()
	return nil, fmt.Errorf("gateway did not connect")
}

func (t *taskTarget) call(ctx context.Context) error {
	_, err := t.client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: string(taskBody)})
	return err
}

// Tasks runs the TaskService benchmark at concurrency 64: confirmed
// SubmitTask calls/s next to a raw confirmed publisher (T_pub) and the gRPC
// echo server (T_echo), and prints the ratios.
func Tasks(ctx context.Context, w io.Writer, o Options) error {
	o = o.withDefaults()
	queue := fmt.Sprintf("warren.bench.tasks.%d", os.Getpid())
	conn, err := amqp.Dial(o.URL)
	if err != nil {
		return err
	}
	defer conn.Close()
	admin, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := admin.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return err
	}
	defer deleteEntities(o.URL, queue, queue)
	echo, err := startEcho()
	if err != nil {
		return err
	}
	defer echo.close()
	raw, err := newRawConfirmed(o.URL, queue)
	if err != nil {
		return err
	}
	defer raw.conn.Close()
	gw, err := startTaskGateway(o.URL, queue)
	if err != nil {
		return err
	}
	defer gw.close()

	subjects := []struct {
		name string
		call callFunc
	}{{"echo", echo.call}, {"raw-confirmed", raw.call}, {"SubmitTask", gw.call}}
	results := map[string][]Result{}
	fmt.Fprintf(w, "\nTaskService benchmark: persistent, confirmed, concurrency %d, %v per measurement, %d rounds, medians\n", taskWindow, o.Duration, o.Rounds)
	for round := range o.Rounds {
		for _, s := range subjects {
			r := load(ctx, taskWindow, o.Duration, s.call)
			if _, err := admin.QueuePurge(queue, false); err != nil {
				return err
			}
			if r.Err != nil {
				return fmt.Errorf("%s: %w", s.name, r.Err)
			}
			results[s.name] = append(results[s.name], r)
			fmt.Fprintf(w, "  round %d  %-14s %9.0f calls/s  p50 %8v\n", round+1, s.name, r.Rate, r.P50.Round(time.Microsecond))
		}
	}
	e, p, g := median(results["echo"]), median(results["raw-confirmed"]), median(results["SubmitTask"])
	var toIdeal, toPub []float64
	for i := range o.Rounds {
		ideal := 1 / (1/results["echo"][i].Rate + 1/results["raw-confirmed"][i].Rate)
		toIdeal = append(toIdeal, results["SubmitTask"][i].Rate/ideal)
		toPub = append(toPub, results["SubmitTask"][i].Rate/results["raw-confirmed"][i].Rate)
	}
	verdict := "meets"
	if medianOf(toIdeal) < 0.8 {
		verdict = "MISSES"
	}
	fmt.Fprintf(w, "  medians: T_echo %.0f, T_pub %.0f, SubmitTask %.0f calls/s\n", e.Rate, p.Rate, g.Rate)
	fmt.Fprintf(w, "  per round, then the median: SubmitTask = %.2f x 1/(1/T_echo + 1/T_pub) (%s the target of 0.80), %.2f x T_pub\n",
		medianOf(toIdeal), verdict, medianOf(toPub))
	if o.TaskProfile != "" {
		r, err := profile(o.TaskProfile, func() Result { return load(ctx, taskWindow, o.Duration*2, gw.call) })
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\nCPU profile of SubmitTask at c=64 (%.0f calls/s) written to %s\n", r.Rate, o.TaskProfile)
	}
	return nil
}
