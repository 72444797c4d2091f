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
