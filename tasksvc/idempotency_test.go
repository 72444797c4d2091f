package tasksvc_test

import (
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestIdempotencyKey (fix b): the same idempotency key submitted three
// times one after another, and eight times at once, publishes one task
// each and answers its id every time; a submission that failed records
// nothing, so its retry publishes.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	client, _ := startGateway(t, n.config())
	ctx := testCtx(t)

	// No queue yet: the submission fails and must not be remembered.
	_, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "first try", IdempotencyKey: "order-1"})
	warrentest.WantCode(t, err, codes.Unavailable)
	declareQueue(t, n.queue)

	for i := range 3 {
		resp, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "sequential", IdempotencyKey: "order-1"})
		if err != nil {
			t.Fatalf("SubmitTask %d: %v", i, err)
		}
		if resp.GetTaskId() != "order-1" {
			t.Errorf("SubmitTask %d: got task id %q, want order-1", i, resp.GetTaskId())
		}
	}
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Go(func() {
			resp, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "concurrent", IdempotencyKey: "order-2"})
			ids[i], errs[i] = resp.GetTaskId(), err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != "order-2" {
			t.Errorf("concurrent SubmitTask %d: got %q, %v; want order-2", i, ids[i], errs[i])
		}
	}

	ch := brokertest.Channel(t)
	got := map[string][]string{}
	for {
		d, ok, err := ch.Get(n.queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got[d.MessageId] = append(got[d.MessageId], string(d.Body))
	}
	if len(got) != 2 || len(got["order-1"]) != 1 || len(got["order-2"]) != 1 || got["order-1"][0] != "sequential" {
		t.Errorf("got deliveries %v, want one for order-1 (\"sequential\") and one for order-2", got)
	}
}
