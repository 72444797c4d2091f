package queuesvc_test

import (
	"context"
	"testing"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/interop"
	"github.com/warrenrpc/warren/queuesvc"
)

// TestInteropTutorialHello: the Hello World tutorial's send and receive,
// in every language, beside warren's Send and Receive, on a queue each
// side declares as its own config says (today's tutorials and warren's
// default: a durable quorum queue; the older tutorials and
// core.QueueClassic: a plain classic one), whichever declares it first.
// Both directions run in both orders. Warren must declare the queue as
// the tutorial does (it warns when it finds other properties), and the
// tutorial program must not die of a 406.
func TestInteropTutorialHello(t *testing.T) {
	interop.Matrix(t, func(t *testing.T, c interop.Case) {
		queue := brokertest.Name(t, "hello")
		var warns interop.Warnings
		env := startWith(t, queuesvc.Config{QueueType: c.WarrenType(), Logger: warns.Logger()})
		ctx := testCtx(t)
		fromTutorial := "¡Hola desde " + c.Lang.Name + "!"
		const fromWarren = "¡Hola desde warren!"

		// tutorialToWarren runs send, and warren's Receive gets its
		// message on stream (opened by the caller when warren is to
		// declare first).
		tutorialToWarren := func(stream warrenv1.QueueService_ReceiveClient) {
			t.Helper()
			interop.Run(t, c.Command(t, "send", queue, fromTutorial))
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			if m.GetBody() != fromTutorial {
				t.Errorf("Receive got %q, want %q", m.GetBody(), fromTutorial)
			}
		}
		// warrenToTutorial sends with warren to a running receive.
		warrenToTutorial := func(receive *interop.Proc) {
			t.Helper()
			if _, err := env.queues.Send(ctx, &warrenv1.SendRequest{Queue: queue, Body: fromWarren}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			receive.Expect(t, " [x] Received "+fromWarren)
		}
		receive := func() *interop.Proc {
			t.Helper()
			p := interop.Start(t, c.Command(t, "receive", queue))
			p.Expect(t, "Waiting for messages")
			brokertest.WaitConsumers(t, queue, 1)
			return p
		}
		openStream := func(ctx context.Context) warrenv1.QueueService_ReceiveClient {
			t.Helper()
			stream, err := env.queues.Receive(ctx, &warrenv1.ReceiveRequest{Queue: queue})
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if _, err := stream.Header(); err != nil { // the queue is declared and consumed
				t.Fatalf("Receive header: %v", err)
			}
			return stream
		}

		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if c.WarrenFirst {
			tutorialToWarren(openStream(sctx))
			cancel()
			brokertest.WaitConsumers(t, queue, 0)
			warrenToTutorial(receive())
		} else {
			r := receive()
			warrenToTutorial(r)
			r.Stop()
			brokertest.WaitConsumers(t, queue, 0)
			tutorialToWarren(openStream(sctx))
		}
		warns.WantNone(t)
		c.WantQueue(t, queue, false)
	})
}
