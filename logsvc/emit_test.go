package logsvc

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
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
			warrentest.WantCode(t, err, tc.want)
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
// INVALID_ARGUMENT and says exactly how many were confirmed before it.
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
	warrentest.WantCode(t, err, codes.InvalidArgument)
	msg := status.Convert(err).Message()
	if want := "routing key is 256 bytes"; !strings.Contains(msg, want) {
		t.Errorf("message: got %q, want it to contain %q", msg, want)
	}
	if want := "(2 messages confirmed before this)"; !strings.Contains(msg, want) {
		t.Errorf("message: got %q, want it to contain %q", msg, want)
	}
	// The two valid messages before it were published.
	if got := keys(s.recvN(t, 2, 10*time.Second)); len(got) != 2 {
		t.Errorf("got %q, want two messages", got)
	}
}

// TestEmitWithoutBroker: while the gateway has no broker connection,
// emits and subscriptions fail at once with UNAVAILABLE rather than hang.
func TestEmitWithoutBroker(t *testing.T) {
	t.Parallel()
	cfg := gatewayConfig("warren-test-no-broker", warrentest.QuietLog)
	cfg.AMQP.URLs = []string{"amqp://guest:guest@127.0.0.1:1/"} // nothing listens
	gw := warrentest.ServeGateway(t, cfg, New(Config{}))
	client := warrenv1.NewLogServiceClient(gw.Conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := client.EmitLog(ctx, &warrenv1.EmitLogRequest{Body: "x"})
	warrentest.WantCode(t, err, codes.Unavailable)

	es, err := client.EmitLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = es.Send(&warrenv1.EmitLogsRequest{Body: "x"})
	_, err = es.CloseAndRecv()
	warrentest.WantCode(t, err, codes.Unavailable)

	ss, err := client.SubscribeLogs(ctx, &warrenv1.SubscribeLogsRequest{})
	if err == nil {
		_, err = ss.Recv()
	}
	warrentest.WantCode(t, err, codes.Unavailable)
	if err == io.EOF || !strings.Contains(status.Convert(err).Message(), core.ErrNotConnected.Error()) {
		t.Errorf("got %v, want the message to say %q", err, core.ErrNotConnected)
	}
}

// TestServiceName: the gateway reports health under the proto's name.
func TestServiceName(t *testing.T) {
	t.Parallel()
	var _ gateway.Service = New(Config{})
	if got, want := New(Config{}).Name(), "warren.v1.LogService"; got != want {
		t.Errorf("Name: got %q, want %q", got, want)
	}
}
