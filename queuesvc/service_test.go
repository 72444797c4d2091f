package queuesvc_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"go.uber.org/goleak"

	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/queuesvc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a gateway serving QueueService for one test.
type env struct {
	gw     *warrentest.Gateway
	queues warrenv1.QueueServiceClient
}

func start(t testing.TB) *env {
	t.Helper()
	return startWith(t, queuesvc.Config{Logger: warrentest.QuietLog})
}

func startWith(t testing.TB, cfg queuesvc.Config) *env {
	t.Helper()
	gw := warrentest.StartGateway(t, gateway.Config{}, queuesvc.New(cfg))
	return &env{gw: gw, queues: warrenv1.NewQueueServiceClient(gw.Conn)}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func queueReady(t testing.TB, ch *amqp.Channel, name string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare %q: %v", name, err)
	}
	return q.Messages
}

func TestQueueSendReceive(t *testing.T) {
	t.Parallel()
	env := start(t)
	queue := brokertest.Name(t, "hola")
	ctx := testCtx(t)
	sent, err := env.queues.Send(ctx, &warrenv1.SendRequest{Queue: queue, Body: "¡Hola Mundo!"})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	// Declared as today's tutorial declares it: durable, quorum.
	brokertest.WantQuorum(t, queue)
	ch := brokertest.Channel(t)
	sctx, cancel := context.WithCancel(ctx)
	stream, err := env.queues.Receive(sctx, &warrenv1.ReceiveRequest{Queue: queue})
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if got.GetBody() != "¡Hola Mundo!" || got.GetMessageId() != sent.GetMessageId() || got.GetRedelivered() {
		t.Errorf("got %v, want body %q id %q, not redelivered", got, "¡Hola Mundo!", sent.GetMessageId())
	}
	// It was acknowledged after it was sent: ending the stream (which
	// closes its channel) must not requeue it.
	cancel()
	warrentest.Eventually(t, 5*time.Second, "the stream's consumer gone", func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Consumers == 0
	})
	if n := queueReady(t, ch, queue); n != 0 {
		t.Errorf("got %d messages back in the queue, want 0 (acknowledged)", n)
	}
}

func TestQueueCompetingStreams(t *testing.T) {
	t.Parallel()
	env := start(t)
	queue := brokertest.Name(t, "hola")
	ctx := testCtx(t)
	const streams, n = 2, 20
	var mu sync.Mutex
	got := map[string]int{}
	perStream := make([]int, streams)
	var wg sync.WaitGroup
	for i := range streams {
		stream, err := env.queues.Receive(ctx, &warrenv1.ReceiveRequest{Queue: queue})
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if _, err := stream.Header(); err != nil {
			t.Fatalf("Receive header: %v", err)
		}
		wg.Go(func() {
			for {
				m, err := stream.Recv()
				if err != nil {
					return
				}
				mu.Lock()
				got[m.GetBody()]++
				perStream[i]++
				mu.Unlock()
			}
		})
	}
	for i := range n {
		if _, err := env.queues.Send(ctx, &warrenv1.SendRequest{Queue: queue, Body: fmt.Sprintf("m%d", i)}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	warrentest.Eventually(t, 10*time.Second, "20 messages received", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	})
	env.gw.Stop() // ends both streams
	wg.Wait()
	for i := range n {
		if c := got[fmt.Sprintf("m%d", i)]; c != 1 {
			t.Errorf("message m%d received %d times, want 1", i, c)
		}
	}
	for i, c := range perStream {
		if c == 0 {
			t.Errorf("stream %d received nothing, want the streams to share the queue (got %v)", i, perStream)
		}
	}
	t.Logf("messages per stream: %v", perStream)
}

func TestQueueExistingDurableQueueIsUsed(t *testing.T) {
	t.Parallel()
	env := start(t)
	queue := brokertest.Name(t, "hola")
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-max-length": int32(100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.queues.Send(testCtx(t), &warrenv1.SendRequest{Queue: queue, Body: "hi"}); err != nil {
		t.Fatalf("Send to an existing durable queue: %v", err)
	}
	if got := queueReady(t, ch, queue); got != 1 {
		t.Errorf("got %d messages, want 1", got)
	}
}

func TestQueueShutdown(t *testing.T) {
	t.Parallel()
	env := start(t)
	ctx := testCtx(t)
	stream, err := env.queues.Receive(ctx, &warrenv1.ReceiveRequest{Queue: brokertest.Name(t, "hola")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	env.gw.Stop()
	_, err = stream.Recv()
	warrentest.WantCode(t, err, codes.Unavailable)
}

func TestQueueReservedNameIsPermissionDenied(t *testing.T) {
	t.Parallel()
	env := start(t)
	_, err := env.queues.Send(testCtx(t), &warrenv1.SendRequest{Queue: "amq.warren-test", Body: "x"})
	warrentest.WantCode(t, err, codes.PermissionDenied)
}
