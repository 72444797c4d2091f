package queuesvc_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"go.uber.org/goleak"

	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/pytest"
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

// TestQueueInteropPika: the tutorial's send.py → warren receive, and
// warren send → the tutorial's receive.py.
func TestQueueInteropPika(t *testing.T) {
	t.Parallel()
	pytest.Require(t)
	env := start(t)
	ctx := testCtx(t)
	pyEnv := append(os.Environ(), "AMQP_URL="+brokertest.URL())

	t.Run("send.py to Receive", func(t *testing.T) {
		queue := brokertest.Name(t, "hola")
		cmd := exec.Command(pytest.Python, "testdata/send.py", queue)
		cmd.Env = pyEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("send.py: %v\n%s", err, out)
		}
		stream, err := env.queues.Receive(ctx, &warrenv1.ReceiveRequest{Queue: queue})
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if m.GetBody() != "¡Hola Mundo!" {
			t.Errorf("got %q, want %q", m.GetBody(), "¡Hola Mundo!")
		}
	})
	t.Run("Send to receive.py", func(t *testing.T) {
		queue := brokertest.Name(t, "hola")
		cmd := exec.Command(pytest.Python, "testdata/receive.py", queue)
		cmd.Env = pyEnv
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		sc := bufio.NewScanner(out)
		if !sc.Scan() || !strings.Contains(sc.Text(), "Waiting for messages") {
			t.Fatalf("receive.py printed %q, want the waiting banner", sc.Text())
		}
		if _, err := env.queues.Send(ctx, &warrenv1.SendRequest{Queue: queue, Body: "¡Hola desde warren!"}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if !sc.Scan() || sc.Text() != " [x] Received ¡Hola desde warren!" {
			t.Errorf("receive.py printed %q, want %q", sc.Text(), " [x] Received ¡Hola desde warren!")
		}
	})
}

func TestQueueReservedNameIsPermissionDenied(t *testing.T) {
	t.Parallel()
	env := start(t)
	_, err := env.queues.Send(testCtx(t), &warrenv1.SendRequest{Queue: "amq.warren-test", Body: "x"})
	warrentest.WantCode(t, err, codes.PermissionDenied)
}
