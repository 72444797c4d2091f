package bench

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// The generic path's benchmark runs end to end, briefly, prints every
// figure with its verdict, and deletes the queues it declared; the figures
// themselves are not judged here.
func TestRoutesPrintsEveryFigure(t *testing.T) {
	o := Options{
		URL:      brokertest.Require(t),
		Duration: time.Second, // long enough for a call at c=64 under -race on a loaded machine
		Rounds:   1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := Routes(ctx, &out, o); err != nil {
		t.Fatalf("Routes: %v\n%s", err, &out)
	}
	for _, want := range []string{
		"Generic path benchmark: benchfib.v1.FibService from a descriptor set",
		"generic path c=64: generic = ",
		"x hand-written calls/s (meets the target of 1.00)|x hand-written calls/s (MISSES the target of 1.00)",
		"in turn, c=1: p50 hand-written ",
		"generic path c=1:  p50 generic - p50 hand-written = ",
		"called in turn (meets the target of 20µs)|called in turn (MISSES the target of 20µs)",
		"; measured apart: ",
		"SDK worker c=64: worker.Server = ",
		"x a raw amqp091-go worker's calls/s",
		"(meets the target of 0.90)|(MISSES the target of 0.90)",
	} {
		if !containsAny(out.String(), strings.Split(want, "|")) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, s := range []string{"raw-queue", "hand-written", "generic", "raw-client/sdk-worker", "raw-client/raw-worker"} {
		if !strings.Contains(out.String(), "  "+s+" ") {
			t.Errorf("output lacks the median of %s", s)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", &out)
	}

	fibQueue, routedQueue, rawQueue, err := routeQueues(routesPrefix())
	if err != nil {
		t.Fatal(err)
	}
	conn := brokertest.Dial(t)
	for _, q := range []string{fibQueue, routedQueue, rawQueue} {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive(q, false, false, false, false, nil)
		var aerr *amqp.Error
		if !errors.As(err, &aerr) || aerr.Code != amqp.NotFound {
			_ = ch.Close()
			t.Errorf("queue %s after the run: passive declare = %v, want NOT_FOUND: the run leaves it behind", q, err)
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
