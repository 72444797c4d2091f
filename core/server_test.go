package core_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestServerAndClient runs a Server and a Client against each other: the
// deadline travels into the handler's context, errors and panics come
// back as statuses, and the Server keeps serving after each.
func TestServerAndClient(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	handler := core.HandlerFunc(func(ctx context.Context, d *amqp.Delivery) (amqp.Publishing, error) {
		switch string(d.Body) {
		case "deadline":
			dl, ok := ctx.Deadline()
			if !ok {
				return amqp.Publishing{}, errors.New("no deadline in the handler's context")
			}
			return amqp.Publishing{Body: []byte(time.Until(dl).Round(time.Second).String())}, nil
		case "argument":
			return amqp.Publishing{}, core.Argumentf("bad %s", "input")
		case "status":
			return amqp.Publishing{}, status.Error(codes.AlreadyExists, "seen it")
		case "panic":
			panic("handler bug")
		}
		return amqp.Publishing{Body: append([]byte("echo "), d.Body...)}, nil
	})
	ssup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-server-" + t.Name(), Logger: warrentest.QuietLog})
	srv := core.NewServer(ssup, core.ServerConfig{Queue: core.QueueSpec{Name: queue}, Logger: warrentest.QuietLog}, handler)
	run(t, ssup)
	csup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-client-" + t.Name(), Logger: warrentest.QuietLog})
	client := core.NewClient(csup, core.ClientConfig{})
	run(t, csup)

	call := func(body string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := client.Call(ctx, queue, amqp.Publishing{Body: []byte(body)})
		return string(d.Body), err
	}
	tests := []struct {
		body     string
		want     string
		wantCode codes.Code
	}{
		{body: "hi", want: "echo hi"},
		{body: "deadline", want: "5s"},
		{body: "argument", wantCode: codes.InvalidArgument},
		{body: "status", wantCode: codes.AlreadyExists},
		{body: "panic", wantCode: codes.Internal},
	}
	for _, tt := range tests {
		got, err := call(tt.body)
		if code := status.Code(core.Status(err)); code != tt.wantCode || got != tt.want {
			t.Errorf("call %q = %q, %v (%v); want %q, %v", tt.body, got, code, err, tt.want, tt.wantCode)
		}
		if got, err := call("again"); err != nil || got != "echo again" {
			t.Fatalf("after %q: %q, %v; want the server to keep serving", tt.body, got, err)
		}
	}
	if st := srv.Stats(); st.Panics != 1 || st.Served != uint64(2*len(tests)) {
		t.Errorf("stats %+v, want 1 panic and %d served", st, 2*len(tests))
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_, err := call("after shutdown")
	if !errors.Is(err, core.ErrNoConsumer) {
		t.Errorf("call after the server's Shutdown: %v, want ErrNoConsumer", err)
	}
}

func TestClientNotConnected(t *testing.T) {
	t.Parallel()
	c := core.NewClient(core.NewSupervisor(core.Config{}), core.ClientConfig{})
	_, err := c.Call(context.Background(), "q", amqp.Publishing{})
	if !errors.Is(err, core.ErrNotConnected) {
		t.Fatalf("Call before connecting: %v, want ErrNotConnected", err)
	}
	warrentest.WantCode(t, core.Status(err), codes.Unavailable)
}

// TestStreamServerAndCallStream: a StreamHandler's replies reach
// CallStream in order with its final status; a panic ends the stream as
// INTERNAL; a caller that reads too slowly loses its stream to
// ErrOverflow, after the replies that fit.
func TestStreamServerAndCallStream(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "stream")
	handler := core.StreamHandlerFunc(func(ctx context.Context, d *amqp.Delivery, send func(amqp.Publishing) error) error {
		n, _ := strconv.Atoi(string(d.Body))
		for i := range n {
			if err := send(amqp.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
				return err
			}
		}
		switch {
		case n == 2:
			return status.Error(codes.Aborted, "stopped after two")
		case n == 3:
			panic("handler bug")
		}
		return nil
	})
	ssup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-server-" + t.Name(), Logger: warrentest.QuietLog})
	core.NewStreamServer(ssup, core.ServerConfig{Queue: core.QueueSpec{Name: queue}, Logger: warrentest.QuietLog}, handler)
	run(t, ssup)
	csup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-client-" + t.Name(), Logger: warrentest.QuietLog})
	client := core.NewClient(csup, core.ClientConfig{StreamBuffer: 4})
	run(t, csup)
	warrentest.Eventually(t, 10*time.Second, "a worker on the queue", func() bool { return client.Ready(queue) == nil })

	stream := func(n int, slow bool) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := client.CallStream(ctx, queue, amqp.Publishing{Body: []byte(strconv.Itoa(n))})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		if slow {
			time.Sleep(500 * time.Millisecond) // every reply is in by now
		}
		var got []string
		for {
			d, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			if err != nil {
				return got, err
			}
			got = append(got, string(d.Body))
		}
	}
	for _, tt := range []struct {
		n        int
		slow     bool
		want     int
		wantCode codes.Code
	}{
		{n: 5, want: 5},
		{n: 0, want: 0},
		{n: 2, want: 2, wantCode: codes.Aborted},
		{n: 3, want: 3, wantCode: codes.Internal},
		{n: 50, slow: true, want: 4, wantCode: codes.ResourceExhausted},
		{n: 4, want: 4}, // and the stream server keeps serving
	} {
		got, err := stream(tt.n, tt.slow)
		if status.Code(core.Status(err)) != tt.wantCode || len(got) != tt.want {
			t.Errorf("stream of %d (slow %v): %q, %v; want %d replies and %v", tt.n, tt.slow, got, err, tt.want, tt.wantCode)
		}
		for i, b := range got {
			if b != strconv.Itoa(i) {
				t.Errorf("stream of %d: reply %d is %q", tt.n, i, b)
			}
		}
	}
}

// TestServerOutlivesAPoisonReplyTo: RabbitMQ 3.10 closes the connection
// of whoever publishes to a malformed direct reply-to name
// ("amq.rabbitmq.reply-to." and something that does not decode to a
// channel of a node it knows) with INTERNAL_ERROR. A foreign client's
// request that carries one so costs the Server its connection, and its
// redelivery would cost the next worker its own, forever, unless a
// redelivered request to a direct reply-to is acknowledged before its
// reply. Each such request costs the Server at most two connections, and
// the requests after it are answered.
func TestServerOutlivesAPoisonReplyTo(t *testing.T) {
	for _, typ := range []core.QueueType{core.QueueQuorum, core.QueueClassic} {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			testPoisonReplyTo(t, typ)
		})
	}
}

func testPoisonReplyTo(t *testing.T, typ core.QueueType) {
	queue := brokertest.Name(t, "rpc")
	var sessions warrentest.Sessions
	sup := core.NewSupervisor(core.Config{URLs: []string{brokertest.Require(t)}, Name: "warren-test-server-" + t.Name(), Logger: warrentest.QuietLog}, &sessions)
	srv := core.NewServer(sup, core.ServerConfig{Queue: core.QueueSpec{Name: queue, Type: typ}, Logger: warrentest.QuietLog},
		core.HandlerFunc(func(_ context.Context, d *amqp.Delivery) (amqp.Publishing, error) {
			return amqp.Publishing{Body: append([]byte("echo "), d.Body...)}, nil
		}))
	run(t, sup)
	ch := brokertest.Channel(t)
	replies, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(replies.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, poison := range []string{
		"amq.rabbitmq.reply-to.aGVsbG8=.abc",    // not a term
		"amq.rabbitmq.reply-to.!!!.abc",         // not base64
		"amq.rabbitmq.reply-to.g2EF.abc",        // a term, not a pid
		"amq.rabbitmq.reply-to." + otherNodePid, // a pid of a node the broker does not know
	} {
		before := sessions.N()
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false,
			amqp.Publishing{ReplyTo: poison, CorrelationId: "poison", Body: []byte("poison")}); err != nil {
			t.Fatal(err)
		}
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false,
			amqp.Publishing{ReplyTo: replies.Name, CorrelationId: "good", Body: []byte("good")}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-deliveries:
			if d.CorrelationId != "good" || string(d.Body) != "echo good" {
				t.Fatalf("after reply_to %q: reply %q to %q, want %q to %q", poison, d.Body, d.CorrelationId, "echo good", "good")
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("after reply_to %q: no reply to the next request", poison)
		}
		// Long enough for several more connections, had the poison come
		// back again and again.
		time.Sleep(2 * time.Second)
		warrentest.Eventually(t, 15*time.Second, "the server connected", sup.Connected)
		if n := sessions.N() - before; n > 2 {
			t.Fatalf("reply_to %q cost the server %d connections, want at most 2", poison, n)
		} else {
			t.Logf("reply_to %q cost the server %d connection(s)", poison, n)
		}
	}
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil || q.Messages != 0 {
		t.Errorf("queue holds %d messages (%v), want 0", q.Messages, err)
	}
	if st := srv.Stats(); st.Served < 4 {
		t.Errorf("stats %+v, want the 4 good requests served", st)
	}
}

// otherNodePid is the encoded part of a direct reply-to name as RabbitMQ
// 3.10 makes it, with the hash standing for the node changed: a channel
// of a node the broker does not know.
const otherNodePid = "g1h2AA1yZXBseUB6MjQ4ODg0AABgrwAAAAprDUzs.CIWOoFkDsJQ7Mj7SovwPUw=="
