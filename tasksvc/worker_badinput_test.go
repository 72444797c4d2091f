package tasksvc_test

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/tasksvc"
)

// TestTaskWorkerBadMessages throws malformed AMQP messages at a tasks
// worker from a raw amqp091-go client, one after another: bodies that are
// garbage, invalid UTF-8, empty or 16 MiB; no message_id; odd content
// types; warren-attempt and x-delivery-count headers of every AMQP type and
// out of range. A task is text the handler gets as it is, so each one runs
// and is acknowledged; a failing one ("poison" prefix) is retried and
// dead-lettered with a sane attempt number whatever its headers said. After
// each case a good task runs, and nothing is left in the work queue.
func TestTaskWorkerBadMessages(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	var l taskLog
	startWorker(t, n, "A", &l, tasksvc.WorkerConfig{MaxAttempts: 3}) // Unit 0: no sleeping
	ch := brokertest.Channel(t)
	dead := n.dead()
	hdr := func(k string, v any) amqp.Table { return amqp.Table{k: v} }
	const att = tasksvc.HeaderAttempt
	tests := []struct {
		name     string
		pub      amqp.Publishing
		wantDead int32 // 0: runs once and is acknowledged; else the dead letter's warren-attempt
	}{
		{name: "garbage body", pub: amqp.Publishing{Body: []byte{0x00, 0x01, 0xfe, 0xff, '.', 0x80}}},
		{name: "invalid UTF-8 body", pub: amqp.Publishing{Body: []byte("caf\xc3\x28 ...")}},
		{name: "empty body", pub: amqp.Publishing{}},
		{name: "16 MiB body", pub: amqp.Publishing{Body: bytes.Repeat([]byte("."), 16<<20)}},
		{name: "no message_id", pub: amqp.Publishing{Body: []byte("no id")}},
		{name: "binary content type", pub: amqp.Publishing{ContentType: "application/octet-stream", Body: []byte("bin")}},
		{name: "JSON content type", pub: amqp.Publishing{ContentType: "application/json", Body: []byte(`{"task":1}`)}},
		{name: "expired deadline header", pub: amqp.Publishing{Body: []byte("late"), Headers: hdr(wire.HeaderDeadline, int64(1))}},
		{name: "attempt a word", pub: amqp.Publishing{Body: []byte("attempt word"), Headers: hdr(att, "abc")}},
		{name: "attempt a float", pub: amqp.Publishing{Body: []byte("attempt float"), Headers: hdr(att, 2.5)}},
		{name: "attempt a bool", pub: amqp.Publishing{Body: []byte("attempt bool"), Headers: hdr(att, true)}},
		{name: "attempt a table", pub: amqp.Publishing{Body: []byte("attempt table"), Headers: hdr(att, amqp.Table{"n": int32(2)})}},
		{name: "attempt an array", pub: amqp.Publishing{Body: []byte("attempt array"), Headers: hdr(att, []any{int32(2)})}},
		{name: "attempt bytes", pub: amqp.Publishing{Body: []byte("attempt bytes"), Headers: hdr(att, []byte("2"))}},
		{name: "delivery count a word", pub: amqp.Publishing{Body: []byte("count word"), Headers: hdr("x-delivery-count", "lots")}},
		{name: "poison, attempt a word", pub: amqp.Publishing{Body: []byte("poison word"), Headers: hdr(att, "abc")}, wantDead: 3},
		{name: "poison, attempt negative", pub: amqp.Publishing{Body: []byte("poison negative"), Headers: hdr(att, int32(-7))}, wantDead: 3},
		{name: "poison, attempt zero", pub: amqp.Publishing{Body: []byte("poison zero"), Headers: hdr(att, int8(0))}, wantDead: 3},
		{name: "poison, attempt 2 as text", pub: amqp.Publishing{Body: []byte("poison text 2"), Headers: hdr(att, "2")}, wantDead: 3},
		{name: "poison, attempt the largest int64", pub: amqp.Publishing{Body: []byte("poison max"), Headers: hdr(att, int64(math.MaxInt64))}, wantDead: math.MaxInt32},
		{name: "poison, delivery count the largest int64", pub: amqp.Publishing{Body: []byte("poison count max"), Headers: hdr("x-delivery-count", int64(math.MaxInt64))}, wantDead: math.MaxInt32},
		{name: "poison, attempt over int64 as text", pub: amqp.Publishing{Body: []byte("poison text huge"), Headers: hdr(att, "99999999999999999999")}, wantDead: 3},
	}
	ran := func(body string) int {
		started, _ := l.snapshot()
		n := 0
		for _, r := range started {
			if r.body == body {
				n++
			}
		}
		return n
	}
	for i, tt := range tests {
		// In order: the worker must keep serving after each case.
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pub
			p.DeliveryMode = amqp.Persistent
			if err := ch.Publish("", n.queue, false, false, p); err != nil {
				t.Fatal(err)
			}
			body := string(p.Body)
			if tt.wantDead == 0 {
				warrentest.Eventually(t, 10*time.Second, "the task done", func() bool { return ran(body) >= 1 })
			} else {
				var d amqp.Delivery
				warrentest.Eventually(t, 10*time.Second, "the dead letter", func() bool {
					var ok bool
					var err error
					d, ok, err = ch.Get(dead, true)
					if err != nil {
						t.Fatalf("basic.get %s: %v", dead, err)
					}
					return ok
				})
				if string(d.Body) != body {
					t.Fatalf("dead letter %q, want %q", d.Body, body)
				}
				if got := d.Headers[att]; got != tt.wantDead {
					t.Errorf("dead letter %s: got %v (%T), want %d", att, got, got, tt.wantDead)
				}
				if got, want := ran(body), min(3, int(tt.wantDead)); got > want {
					t.Errorf("poison ran %d times, want at most %d", got, want)
				}
			}
			good := "good after case " + strings.Repeat(".", i%3)
			if err := ch.Publish("", n.queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(good)}); err != nil {
				t.Fatal(err)
			}
			warrentest.Eventually(t, 10*time.Second, "a good task after the case", func() bool { return ran(good) >= 1 })
			l.reset() // bodies repeat across cases
		})
	}
	t.Logf("%d cases", len(tests))
	warrentest.Eventually(t, 5*time.Second, "an empty work queue", func() bool {
		ready, _ := queueDepth(t, ch, n.queue)
		return ready == 0
	})
	if ready, _ := queueDepth(t, ch, dead); ready != 0 {
		t.Errorf("got %d unexpected dead letters, want 0", ready)
	}
}
