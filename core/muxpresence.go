package core

import (
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// muxPresence is a Mux session's consumer of MuxConfig.Presence: one while
// the session has subscriptions (and Linger after its last), on a channel
// of its own, so that the queue's consumer count is the number of
// gateways that have subscriptions. Nothing is ever published to the
// queue; the consumer acknowledges nothing.
type muxPresence struct {
	queue  string
	linger time.Duration

	mu    sync.Mutex
	subs  int
	ch    *amqp.Channel // nil while it does not consume
	timer *time.Timer   // the linger after the last subscription
}

// enter counts a subscription in, and consumes the queue if it does not
// yet.
func (p *muxPresence) enter(conn *Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs++
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if p.ch != nil && !p.ch.IsClosed() {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		p.subs--
		return ChannelError("open channel", err)
	}
	if _, err := ch.QueueDeclare(p.queue, false, true, false, false, nil); err != nil {
		p.subs--
		_ = ch.Close()
		return ChannelError(fmt.Sprintf("declare queue %q", p.queue), err)
	}
	if _, err := ch.Consume(p.queue, "", true, false, false, false, nil); err != nil {
		p.subs--
		_ = ch.Close()
		return ChannelError(fmt.Sprintf("consume %q", p.queue), err)
	}
	p.ch = ch
	return nil
}

// leave counts a subscription out; after the last, and its linger, the
// consumer goes.
func (p *muxPresence) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs--
	if p.subs > 0 || p.ch == nil {
		return
	}
	if p.linger < 0 {
		p.stopLocked()
		return
	}
	p.timer = time.AfterFunc(p.linger, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.subs == 0 {
			p.stopLocked()
		}
	})
}

// close ends the consumer at once (the session ended).
func (p *muxPresence) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.stopLocked()
}

func (p *muxPresence) stopLocked() {
	if p.ch != nil {
		_ = p.ch.Close() // cancels the consumer
		p.ch = nil
	}
}
