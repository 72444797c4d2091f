package core

import amqp "github.com/rabbitmq/amqp091-go"

// acker acknowledges a consumer's deliveries in batches (multiple): once
// batch of them were taken, and whenever the consumer flushes, which it
// does when no further delivery waits. Only the consumer's goroutine may
// use it.
type acker struct {
	ch      *amqp.Channel
	batch   int
	tag     uint64 // the last delivery taken
	pending int    // taken and not acknowledged
	acked   func(n int)
}

// newAcker acknowledges on ch at least every batch deliveries; acked, if
// not nil, is told how many each acknowledgement covered.
func newAcker(ch *amqp.Channel, batch int, acked func(n int)) *acker {
	return &acker{ch: ch, batch: max(1, batch), acked: acked}
}

// take counts the delivery tagged tag as done.
func (a *acker) take(tag uint64) {
	a.tag = tag
	a.pending++
	if a.pending >= a.batch {
		a.flush()
	}
}

// flush acknowledges every delivery taken so far.
func (a *acker) flush() {
	if a.pending == 0 {
		return
	}
	_ = a.ch.Ack(a.tag, true) // fails only with the channel, and the deliveries with it
	if a.acked != nil {
		a.acked(a.pending)
	}
	a.pending = 0
}
