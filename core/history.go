package core

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// HistoryConfig makes a Mux keep its exchange's messages in a RabbitMQ
// stream (x-queue-type: stream) and carry its subscriptions on that stream
// rather than on a queue of its own: every delivery then has an offset
// (StreamOffset), and a subscription may start in the past
// (Mux.SubscribeFrom).
//
// The stream is durable and shared: every gateway with the same
// HistoryConfig declares it with the same arguments (a stream declared
// with others fails the connection's set-up with the broker's
// PRECONDITION_FAILED, logged) and reads it with consumers of its own,
// which take nothing from it. It is bound to the exchange so that it gets
// every message: with "#" to a topic exchange, "" to a fanout one, and to a
// direct exchange with Keys and with every key a subscription asks for
// (bindings are kept when the subscription ends: the history of a key
// starts when it was first bound).
type HistoryConfig struct {
	// Stream is the stream's name.
	Stream string
	// MaxAge is the stream's x-max-age: segments whose messages are all
	// older are deleted. Zero: no limit by age.
	MaxAge time.Duration
	// MaxBytes is the stream's x-max-length-bytes: the oldest segments are
	// deleted while the stream is larger. Zero: no limit by size.
	MaxBytes int64
	// SegmentBytes is the stream's x-stream-max-segment-size-bytes: the
	// unit in which retention deletes. Zero: the broker's (500 MB).
	SegmentBytes int64
	// Keys are the binding keys of a direct exchange's stream, bound from
	// the start.
	Keys []string
	// Replays bounds the subscriptions that read the stream with consumers
	// of their own at once (each holds an AMQP channel until it joined the
	// live feed): more wait for one to join or end, so that a crowd of
	// clients resuming at once (after a gateway restart) queues rather than
	// fails on the connection's channel_max. Default: 256.
	Replays int
}

// arguments are the stream's queue.declare arguments.
func (h *HistoryConfig) arguments() amqp.Table {
	args := amqp.Table{"x-queue-type": "stream"}
	if h.MaxAge > 0 {
		args["x-max-age"] = strconv.FormatInt(int64((h.MaxAge+time.Second-1)/time.Second), 10) + "s"
	}
	if h.MaxBytes > 0 {
		args["x-max-length-bytes"] = h.MaxBytes
	}
	if h.SegmentBytes > 0 {
		args["x-stream-max-segment-size-bytes"] = h.SegmentBytes
	}
	return args
}

// ErrHistoryOff is a subscription that asked for a starting point on a Mux
// that keeps no history. It is FAILED_PRECONDITION (Status).
var ErrHistoryOff = errors.New("core: no history is kept for this exchange")

// OffsetError is a starting point outside the history: an offset before
// the oldest message kept (retention deleted it) or past the last one, or
// a time ahead of the clock. It is OUT_OF_RANGE (Status).
type OffsetError struct {
	msg string
}

func (e *OffsetError) Error() string { return e.msg }

// StreamStart is where a subscription starts in a history: StartFirst,
// StartLast, StartOffset or StartTime.
type StreamStart struct {
	kind   int // startFirst...
	offset int64
	time   time.Time
}

const (
	startFirst = iota + 1
	startLast
	startOffset
	startTime
)

// StartFirst starts at the oldest message the history keeps.
func StartFirst() StreamStart { return StreamStart{kind: startFirst} }

// StartLast starts at the most recent message.
func StartLast() StreamStart { return StreamStart{kind: startLast} }

// StartOffset starts at offset n, or the first message after it when no
// message has that offset. n must be at least the offset of the oldest
// message kept and at most the last offset plus one.
func StartOffset(n int64) StreamStart { return StreamStart{kind: startOffset, offset: n} }

// StartTime starts at the first chunk of messages the broker wrote at or
// after t, to the second. t must not be before 1970 or ahead of the clock
// by more than a minute.
func StartTime(t time.Time) StreamStart { return StreamStart{kind: startTime, time: t} }

// StreamOffset is a delivery's offset in a stream (its x-stream-offset
// header), or false when it came from another kind of queue.
func StreamOffset(d *amqp.Delivery) (int64, bool) {
	switch v := d.Headers["x-stream-offset"].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	}
	return 0, false
}

// How long probeStream waits for a stream's first and last messages: for
// the first delivery (a stream that sends none in that time is empty), and
// for a quiet gap after the last chunk's deliveries, which the broker
// sends back to back.
const (
	probeFirstWait = 500 * time.Millisecond
	probeQuiet     = 50 * time.Millisecond
	probeMaxWait   = 500 * time.Millisecond
)

// streamBounds are the offsets of a stream's oldest and newest messages
// when it was probed; empty when it held none.
type streamBounds struct {
	first, last int64
	empty       bool
}

// probeStream finds a stream's bounds with two short-lived consumers on a
// channel of their own: one from "first" (its first delivery is the oldest
// message) and one from "last" (the broker sends the last chunk of
// messages, the newest of which is the last offset; messages written
// meanwhile only raise it). AMQP 0-9-1 has no other way to ask. It
// returns early once atLeast is known to be an offset the stream holds or
// has held (a last offset at least that high), with first known: what a
// start offset needs; -1 waits for the last chunk to end.
func probeStream(conn *Conn, stream string, atLeast int64) (b streamBounds, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return b, ChannelError("open channel", err)
	}
	defer func() { _ = ch.Close() }()
	// A per-consumer prefetch (global=false) applies to the consumers
	// started after it: one delivery is enough from "first".
	if err := ch.Qos(1, 0, false); err != nil {
		return b, ChannelError("set prefetch", err)
	}
	firsts, err := ch.Consume(stream, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		return b, ChannelError(fmt.Sprintf("consume %q", stream), err)
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		return b, ChannelError("set prefetch", err)
	}
	// Streams take no automatic acknowledgement (the broker closes the
	// connection): acknowledge as they come.
	lasts, err := ch.Consume(stream, "", false, false, false, false, amqp.Table{"x-stream-offset": "last"})
	if err != nil {
		return b, ChannelError(fmt.Sprintf("consume %q", stream), err)
	}
	b.first, b.last = -1, -1
	// wait is for the first delivery, then for a quiet gap after the last
	// consumer's latest; deadline bounds the probe once that one started.
	wait := time.NewTimer(probeFirstWait)
	defer wait.Stop()
	var deadline <-chan time.Time
	for {
		select {
		case d, ok := <-firsts:
			if !ok {
				return b, ChannelError(fmt.Sprintf("consume %q", stream), amqp.ErrClosed)
			}
			if off, ok := StreamOffset(&d); ok {
				b.first = off
			}
			firsts = nil // one is enough
			if atLeast >= 0 && b.first >= 0 && b.last >= atLeast {
				return b.settle(), nil
			}
		case d, ok := <-lasts:
			if !ok {
				return b, ChannelError(fmt.Sprintf("consume %q", stream), amqp.ErrClosed)
			}
			if off, ok := StreamOffset(&d); ok && off > b.last {
				b.last = off
			}
			_ = d.Ack(false)
			if atLeast >= 0 && b.first >= 0 && b.last >= atLeast {
				return b.settle(), nil
			}
			if deadline == nil {
				deadline = time.After(probeMaxWait)
			}
			wait.Reset(probeQuiet)
		case <-wait.C:
			if b.first < 0 && b.last < 0 {
				b.empty = true
				return b, nil
			}
			if deadline != nil && b.first < 0 && firsts != nil {
				wait.Reset(probeQuiet) // the oldest is on its way
				continue
			}
			return b.settle(), nil
		case <-deadline:
			return b.settle(), nil
		}
	}
}

// settle makes b consistent when one consumer answered and the other had
// not yet: the stream holds at least the one message seen.
func (b streamBounds) settle() streamBounds {
	if b.first < 0 || b.last >= 0 && b.last < b.first {
		b.first = b.last
	}
	if b.last < b.first {
		b.last = b.first
	}
	return b
}

// consumeArgument resolves start against the stream: the x-stream-offset
// argument of the consumer, and the first offset the subscription may
// hand over (the broker starts at the chunk that holds an offset, so the
// messages before it in that chunk are skipped); -1 when every delivery
// may be.
func (s StreamStart) consumeArgument(conn *Conn, stream string, now time.Time) (arg any, from int64, err error) {
	switch s.kind {
	case startFirst:
		return "first", -1, nil
	case startTime:
		if s.time.Before(time.Unix(0, 0)) {
			return nil, 0, &OffsetError{msg: fmt.Sprintf("start time %s is before 1970: the history holds nothing that old", s.time.UTC().Format(time.RFC3339))}
		}
		if s.time.After(now.Add(time.Minute)) {
			return nil, 0, &OffsetError{msg: fmt.Sprintf("start time %s is in the future (the gateway's clock says %s)", s.time.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
		}
		return s.time, -1, nil
	case startLast, startOffset:
		if s.kind == startOffset && s.offset < 0 {
			return nil, 0, Argumentf("start offset %d is negative", s.offset)
		}
		atLeast := int64(-1) // LAST needs the last offset itself
		if s.kind == startOffset {
			atLeast = max(s.offset-1, 0) // at most the last offset plus one
		}
		b, err := probeStream(conn, stream, atLeast)
		if err != nil {
			return nil, 0, err
		}
		if s.kind == startLast {
			if b.empty {
				return "first", -1, nil
			}
			return b.last, b.last, nil
		}
		switch {
		case b.empty && s.offset > 0:
			return nil, 0, &OffsetError{msg: fmt.Sprintf("start offset %d is past the end of the history: it holds no message yet (the first will be 0)", s.offset)}
		case b.empty:
			return "first", -1, nil
		case s.offset > b.last+1:
			return nil, 0, &OffsetError{msg: fmt.Sprintf("start offset %d is past the end of the history: its last offset is %d", s.offset, b.last)}
		case s.offset < b.first:
			return nil, 0, &OffsetError{msg: fmt.Sprintf("start offset %d is no longer kept: the history's oldest offset is %d (retention deleted the ones before)", s.offset, b.first)}
		}
		return s.offset, s.offset, nil
	}
	return nil, 0, Argumentf("no starting point given")
}
