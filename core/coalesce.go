package core

import (
	"net"
	"sync"
	"time"
)

// coalescingConn batches the writes of many publishers into few syscalls.
//
// amqp091-go writes every publishing with its own flush, under the
// connection's writer mutex, so N concurrent publishers cost N write
// syscalls, one after the other. coalescingConn's Write only appends to a
// buffer and returns; a writer goroutine of its own writes whatever
// accumulated in one syscall. Under load many publishings share a syscall;
// alone, a publishing costs one goroutine wake-up more.
//
// Backpressure is kept: Write blocks while maxPending bytes wait (the peer
// is slow, or blocks us). A failed write closes the connection, so the
// library's reader fails and the connection is reported lost, and every
// later Write returns the error.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	cond    *sync.Cond // signalled when pending shrinks or err is set
	pending []byte
	spare   []byte
	err     error
	closed  bool
	wake    chan struct{} // buffered 1: pending has data
	done    chan struct{} // closed when the writer goroutine ended
}

const maxPending = 1 << 20

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	cc.cond = sync.NewCond(&cc.mu)
	go cc.writeLoop()
	return cc
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && !c.closed && len(c.pending) > maxPending {
		c.cond.Wait()
	}
	if c.closed && c.err == nil {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *coalescingConn) writeLoop() {
	defer close(c.done)
	for range c.wake {
		for {
			c.mu.Lock()
			if c.err != nil || len(c.pending) == 0 {
				stop := c.closed || c.err != nil
				c.mu.Unlock()
				if stop {
					return
				}
				break
			}
			buf := c.pending
			c.pending = c.spare[:0]
			c.mu.Unlock()

			_, err := c.Conn.Write(buf)

			c.mu.Lock()
			c.spare = buf[:0]
			if err != nil && c.err == nil {
				c.err = err
			}
			c.cond.Broadcast()
			failed := c.err != nil
			c.mu.Unlock()
			if failed {
				_ = c.Conn.Close()
				return
			}
		}
	}
}

// Close writes what is pending (for at most a second: the peer may be
// gone) and closes the connection.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.cond.Broadcast() // writers waiting for room give up
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
	err := c.Conn.Close()
	<-c.done
	return err
}
