package brokertest

import (
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QuorumArgs are the arguments today's official tutorials declare their
// queues with (durable, too).
var QuorumArgs = amqp.Table{"x-queue-type": "quorum"}

// Redeclare declares an existing queue again with durable and args, as a
// client that finds it would, on a connection of its own, and returns the
// broker's answer: nil when the declaration is equivalent to the queue's,
// the 406 PRECONDITION_FAILED *amqp.Error when it is not. Any other
// failure fails the test.
func Redeclare(t testing.TB, queue string, durable bool, args amqp.Table) error {
	t.Helper()
	ch := Channel(t)
	_, err := ch.QueueDeclare(queue, durable, false, false, false, args)
	var aerr *amqp.Error
	if err != nil && (!errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed) {
		t.Fatalf("redeclare queue %q: %v", queue, err)
	}
	return err
}

// WantQuorum fails the test unless queue is a durable quorum queue: one
// today's tutorials can declare as they do.
func WantQuorum(t testing.TB, queue string) {
	t.Helper()
	if err := Redeclare(t, queue, true, QuorumArgs); err != nil {
		t.Errorf("queue %q is not a durable quorum queue: %v", queue, err)
	}
}

// WantClassic fails the test unless queue is a classic queue of that
// durability: one the older tutorials can declare as they do (no
// x-queue-type).
func WantClassic(t testing.TB, queue string, durable bool) {
	t.Helper()
	if err := Redeclare(t, queue, durable, nil); err != nil {
		t.Errorf("queue %q is not a classic queue with durable=%v: %v", queue, durable, err)
	}
}

// WaitConsumers waits up to 15 s until queue has want consumers (a
// passive declare every 10 ms, on a connection of its own), and fails the
// test if it does not.
func WaitConsumers(t testing.TB, queue string, want int) {
	t.Helper()
	conn := Dial(t)
	got := -1
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("open channel: %v", err)
		}
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		_ = ch.Close()
		if got = -1; err == nil {
			got = q.Consumers
		}
		if got == want {
			return
		}
	}
	t.Fatalf("queue %q has %d consumers (-1: no queue), want %d", queue, got, want)
}
