package tasksvc_test

import (
	"slices"
	"testing"
	"time"

	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/interop"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// TestInteropTutorialWorkQueues: the Work Queues tutorial's new_task and
// worker, in every language, beside warren's worker and SubmitTask, on a
// work queue each side declares as its own config says (today's
// tutorials and warren's default: a durable quorum queue; the older
// tutorials and core.QueueClassic: a durable classic one), whichever
// declares it first. Both directions run in both orders: new_task's
// tasks done by warren's worker, and SubmitTask's by the tutorial's
// worker (prefetch 1, ack after the work). Warren must declare the queue
// as the tutorial does (it warns when it finds other properties), and
// the tutorial program must not die of a 406.
func TestInteropTutorialWorkQueues(t *testing.T) {
	interop.Matrix(t, func(t *testing.T, c interop.Case) {
		n := newNames(t)
		var warns interop.Warnings
		var l taskLog
		client, _ := startGateway(t, n.config())
		ctx := testCtx(t)

		// startWarrenWorker runs warren's worker and waits until the
		// queue has consumers in all.
		startWarrenWorker := func(consumers int) *warrentest.Workers {
			t.Helper()
			w := tasksvc.NewWorker(tasksvc.WorkerConfig{
				Queue: n.queue, EventsExchange: n.events, WorkerID: "warren",
				QueueType: c.WarrenType(), Handler: l.handler("warren", 10*time.Millisecond), Logger: warns.Logger(),
			})
			ws := warrentest.StartWorkers(t, worker.Config{}, w)
			brokertest.WaitConsumers(t, n.queue, consumers)
			return ws
		}
		newTaskToWarren := func() {
			t.Helper()
			msgs := []string{"Primer mensaje.", "Segundo mensaje.."}
			for _, msg := range msgs {
				interop.Run(t, c.Command(t, "new_task", n.queue, msg))
			}
			// Only new_task's tasks count: a tutorial worker killed between
			// its " [x] Done" and its ack hands its task to warren's.
			var bodies []string
			warrentest.Eventually(t, 10*time.Second, "both tasks done by warren's worker", func() bool {
				_, done := l.snapshot()
				bodies = bodies[:0]
				for _, r := range done {
					if slices.Contains(msgs, r.body) {
						bodies = append(bodies, r.body)
					}
				}
				return len(bodies) == len(msgs)
			})
			if !slices.Equal(bodies, msgs) {
				t.Errorf("warren's worker did %q, want %q in order", bodies, msgs)
			}
		}
		startTutorialWorker := func(consumers int) *interop.Proc {
			t.Helper()
			p := interop.Start(t, c.Command(t, "worker", n.queue))
			p.Expect(t, "Waiting for messages")
			brokertest.WaitConsumers(t, n.queue, consumers)
			return p
		}
		submitToTutorial := func(w *interop.Proc) {
			t.Helper()
			id := submit(t, ctx, client, "Hola.")
			w.Expect(t, " [x] Received Hola. id="+id)
			w.Expect(t, " [x] Done")
		}

		if c.WarrenFirst {
			ws := startWarrenWorker(1)
			newTaskToWarren()
			w := startTutorialWorker(2)
			ws.Stop() // the tutorial's worker alone consumes
			brokertest.WaitConsumers(t, n.queue, 1)
			submitToTutorial(w)
		} else {
			w := startTutorialWorker(1)
			submitToTutorial(w)
			startWarrenWorker(2)
			w.Stop() // warren's worker alone consumes
			brokertest.WaitConsumers(t, n.queue, 1)
			newTaskToWarren()
		}
		warns.WantNone(t)
		c.WantQueue(t, n.queue, true)
	})
}
