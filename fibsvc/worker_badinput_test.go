package fibsvc_test

import (
	"bytes"
	"math"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/wire"
)

// TestFibonacciWorkerMoreBadRequests extends
// TestFibonacciWorkerAnswersBadRequestsAndKeepsServing with what a raw
// amqp091-go client can send beyond it: no correlation_id, a reply_to
// nobody consumes or one that closes the worker's connection, a 16 MiB
// body, numbers the tutorial's int() would not take, and deadline headers
// of every AMQP type. Each gets a clear answer (or, when there is nobody
// to answer, none), and a good request is served after each.
func TestFibonacciWorkerMoreBadRequests(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	runFib(t, fibsvc.WorkerConfig{Queue: queue})
	c := newRawClient(t, queue)
	nobody := brokertest.Name(t, "nobody") // a reply_to with no queue behind it
	tests := []struct {
		name      string
		pub       amqp.Publishing
		replyTo   string // default: the client's reply queue
		noCorrID  bool
		wantReply bool
		wantCode  codes.Code
		wantBody  string
	}{
		{name: "no correlation_id", pub: amqp.Publishing{Body: []byte("10")}, noCorrID: true, wantReply: true, wantBody: "55"},
		{name: "no correlation_id, bad body", pub: amqp.Publishing{Body: []byte("x")}, noCorrID: true, wantReply: true, wantCode: codes.InvalidArgument},
		{name: "reply_to without a queue", pub: amqp.Publishing{Body: []byte("10")}, replyTo: nobody, wantReply: false},
		// RabbitMQ 3.10 closes the connection of the worker that replies
		// to it (core.TestServerOutlivesAPoisonReplyTo).
		{name: "reply_to a malformed direct reply-to name", pub: amqp.Publishing{Body: []byte("10")}, replyTo: "amq.rabbitmq.reply-to.aGVsbG8=.abc", wantReply: false},
		{name: "16 MiB body", pub: amqp.Publishing{Body: bytes.Repeat([]byte("9"), 16<<20)}, wantReply: true, wantCode: codes.InvalidArgument},
		{name: "plus sign", pub: amqp.Publishing{Body: []byte("+5")}, wantReply: true, wantCode: codes.InvalidArgument},
		{name: "hexadecimal", pub: amqp.Publishing{Body: []byte("0x10")}, wantReply: true, wantCode: codes.InvalidArgument},
		{name: "over uint64", pub: amqp.Publishing{Body: []byte("99999999999999999999999")}, wantReply: true, wantCode: codes.InvalidArgument},
		{name: "NUL bytes", pub: amqp.Publishing{Body: []byte("1\x000")}, wantReply: true, wantCode: codes.InvalidArgument},
		{name: "content type with charset", pub: amqp.Publishing{ContentType: "text/plain; charset=utf-8", Body: []byte("10")}, wantReply: true, wantBody: "55"},
		{name: "binary content type", pub: amqp.Publishing{ContentType: "application/octet-stream", Body: []byte{0, 0, 0, 10}}, wantReply: true, wantCode: codes.InvalidArgument},
		{name: "deadline header a float", pub: amqp.Publishing{Body: []byte("10"), Headers: amqp.Table{wire.HeaderDeadline: 1.5}}, wantReply: true, wantBody: "55"},
		{name: "deadline header a bool", pub: amqp.Publishing{Body: []byte("10"), Headers: amqp.Table{wire.HeaderDeadline: true}}, wantReply: true, wantBody: "55"},
		{name: "deadline header a table", pub: amqp.Publishing{Body: []byte("10"), Headers: amqp.Table{wire.HeaderDeadline: amqp.Table{"ms": int64(1)}}}, wantReply: true, wantBody: "55"},
		{name: "deadline header far future", pub: amqp.Publishing{Body: []byte("10"), Headers: amqp.Table{wire.HeaderDeadline: int64(math.MaxInt64)}}, wantReply: true, wantBody: "55"},
		{name: "deadline header most negative", pub: amqp.Publishing{Body: []byte("10"), Headers: amqp.Table{wire.HeaderDeadline: int64(math.MinInt64)}}, wantReply: false},
		{name: "deadline header expired string", pub: amqp.Publishing{Body: []byte("10"), Headers: amqp.Table{wire.HeaderDeadline: "1"}}, wantReply: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pub
			if !tt.noCorrID {
				p.CorrelationId = tt.name
			}
			p.ReplyTo = c.replyTo
			if tt.replyTo != "" {
				p.ReplyTo = tt.replyTo
			}
			c.publish(t, p)
			// A reply may take a while on a loaded machine (16 MiB go
			// through the broker twice); "none" is concluded after 1s.
			wait := time.Second
			if tt.wantReply {
				wait = 15 * time.Second
			}
			d, ok := c.next(wait)
			switch {
			case !tt.wantReply && ok:
				t.Fatalf("got reply %.40q, want none", d.Body)
			case tt.wantReply && !ok:
				t.Fatal("no reply")
			case tt.wantReply:
				if d.CorrelationId != p.CorrelationId {
					t.Fatalf("reply correlation_id %q, want %q", d.CorrelationId, p.CorrelationId)
				}
				code, msg, isErr := wire.ReplyError(d.Headers)
				if tt.wantCode == codes.OK && (isErr || string(d.Body) != tt.wantBody) {
					t.Fatalf("reply %.40q (error %v %q), want %q", d.Body, code, msg, tt.wantBody)
				}
				if tt.wantCode != codes.OK && (!isErr || code != tt.wantCode || msg == "") {
					t.Fatalf("reply %v %q (error %v), want %v with a message", code, msg, isErr, tt.wantCode)
				}
			}
			c.publish(t, amqp.Publishing{Body: []byte("10"), ReplyTo: c.replyTo, CorrelationId: "ok"})
			d, ok = c.next(15 * time.Second) // after a reconnect or two
			if !ok || string(d.Body) != "55" || d.CorrelationId != "ok" {
				t.Fatalf("after case %d: reply %q %q (got one: %v), want 55", i, d.Body, d.CorrelationId, ok)
			}
		})
	}
	t.Logf("%d cases", len(tests))
	q, err := brokertest.Channel(t).QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil || q.Messages != 0 {
		t.Errorf("queue holds %d messages (%v), want 0", q.Messages, err)
	}
}
