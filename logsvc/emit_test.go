package logsvc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

func TestEmitLogInvalid(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	tests := []struct {
		name string
		req  *warrenv1.EmitLogRequest
		want codes.Code
	}{
		{"routing key 256 bytes", &warrenv1.EmitLogRequest{Exchange: direct, RoutingKey: strings.Repeat("a", 256)}, codes.InvalidArgument},
		{"unknown exchange", &warrenv1.EmitLogRequest{Exchange: 7}, codes.InvalidArgument},
		{"routing key 255 bytes", &warrenv1.EmitLogRequest{Exchange: topic, RoutingKey: strings.Repeat("a", 255)}, codes.OK},
		{"nobody subscribed", &warrenv1.EmitLogRequest{Exchange: direct, RoutingKey: "nobody", Body: "lost, as in the tutorial"}, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := h.client.EmitLog(context.Background(), tc.req)
			wantCode(t, "EmitLog", err, tc.want)
		})
	}
}

// TestEmitLogs: a stream of 2000 messages (more than the confirm window)
// answers with the count, and a subscriber gets them all, in order.
func TestEmitLogs(t *testing.T) {
	t.Parallel()
	const n = 2000
	h := start(t, Config{})
	s := h.subscribe(t, topic, "app.*")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	es, err := h.client.EmitLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := es.Send(&warrenv1.EmitLogsRequest{Exchange: topic, RoutingKey: "app.info", Body: fmt.Sprint(i)}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	resp, err := es.CloseAndRecv()
	if err != nil {
		t.Fatalf("CloseAndRecv: %v", err)
	}
	if resp.GetCount() != n {
		t.Errorf("count: got %d, want %d", resp.GetCount(), n)
	}
	for i, m := range s.recvN(t, n, 20*time.Second) {
		if m.GetBody() != fmt.Sprint(i) || m.GetRoutingKey() != "app.info" {
			t.Fatalf("message %d: got %q %q, want app.info %d", i, m.GetRoutingKey(), m.GetBody(), i)
		}
	}
}

// TestEmitLogsInvalid: an invalid message ends the stream with
// INVALID_ARGUMENT and says how many were confirmed before it.
func TestEmitLogsInvalid(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	s := h.subscribe(t, direct, "ok")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	es, err := h.client.EmitLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ok", "ok", strings.Repeat("k", 256), "ok"} {
		if err := es.Send(&warrenv1.EmitLogsRequest{Exchange: direct, RoutingKey: key, Body: "b"}); err != nil {
			break // the server ended the stream; CloseAndRecv has the status
		}
	}
	_, err = es.CloseAndRecv()
	wantCode(t, "EmitLogs", err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "routing key is 256 bytes") {
		t.Errorf("message: got %q, want it to name the routing key's length", msg)
	}
	// The two valid messages before it were published.
	if got := keys(s.recvN(t, 2, 10*time.Second)); len(got) != 2 {
		t.Errorf("got %q, want two messages", got)
	}
}

// TestEmitWithoutBroker: before the Supervisor connects, emits and
// subscriptions fail with UNAVAILABLE rather than hang.
func TestEmitWithoutBroker(t *testing.T) {
	t.Parallel()
	s := New(Config{Logger: quietLogger()})
	_, err := s.EmitLog(context.Background(), &warrenv1.EmitLogRequest{Body: "x"})
	wantCode(t, "EmitLog", err, codes.Unavailable)
	err = s.SubscribeLogs(&warrenv1.SubscribeLogsRequest{}, ctxStream{ctx: context.Background()})
	wantCode(t, "SubscribeLogs", err, codes.Unavailable)
}

// ctxStream is a server stream that only has a context.
type ctxStream struct {
	grpc.ServerStreamingServer[warrenv1.SubscribeLogsResponse]
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }
