package core

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// chanPool keeps a few channels of one connection open for publishing.
// It is the one place in warren that reopens a channel: a channel
// exception (a 404 or 406) kills the channel, and the next get that picks
// it opens a new one and runs setup on it again.
//
// get is safe for concurrent use and takes no lock while the picked
// channel is open. The goroutines setup starts must end when their channel
// closes (amqp091-go closes a channel's notification channels then); wait
// waits for them.
type chanPool struct {
	conn  *Conn
	setup func(*amqp.Channel, *sync.WaitGroup) error
	next  atomic.Uint32
	slots []poolSlot
	wg    sync.WaitGroup
}

type poolSlot struct {
	ch atomic.Pointer[amqp.Channel]
	mu sync.Mutex // serialises reopening
}

// newChanPool opens n channels on conn and runs setup on each. setup may
// start goroutines with wg.Go.
func newChanPool(conn *Conn, n int, setup func(*amqp.Channel, *sync.WaitGroup) error) (*chanPool, error) {
	p := &chanPool{conn: conn, setup: setup, slots: make([]poolSlot, n)}
	for i := range p.slots {
		if _, err := p.open(&p.slots[i]); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// get returns an open channel, round-robin.
func (p *chanPool) get() (*amqp.Channel, error) {
	slot := &p.slots[int(p.next.Add(1))%len(p.slots)]
	if ch := slot.ch.Load(); ch != nil && !ch.IsClosed() {
		return ch, nil
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if ch := slot.ch.Load(); ch != nil && !ch.IsClosed() {
		return ch, nil // another caller reopened it
	}
	return p.open(slot)
}

func (p *chanPool) open(slot *poolSlot) (*amqp.Channel, error) {
	if p.conn.IsClosed() {
		return nil, ErrConnectionLost
	}
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, ChannelError("open channel", err)
	}
	if p.setup != nil {
		if err := p.setup(ch, &p.wg); err != nil {
			_ = ch.Close()
			return nil, err
		}
	}
	slot.ch.Store(ch)
	return ch, nil
}

// wait waits for the goroutines setup started; call it once the
// connection closed.
func (p *chanPool) wait() { p.wg.Wait() }

// ChannelError wraps an error of opening or using a channel as the core's
// errors do: the connection's end becomes ErrConnectionLost, and running
// out of channels ErrTooManyChannels. Services that open a channel of
// their own (to declare what they own) wrap its errors with it.
func ChannelError(what string, err error) error {
	switch {
	case errors.Is(err, amqp.ErrChannelMax):
		return fmt.Errorf("%s: %w", what, ErrTooManyChannels)
	case errors.Is(err, amqp.ErrClosed):
		return fmt.Errorf("%s: %w", what, ErrConnectionLost)
	}
	return fmt.Errorf("%s: %w", what, err)
}
