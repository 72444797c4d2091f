package gateway_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestShutdownLogsTheDrain: a shutdown with a call that never ends logs
// the call it waits for when it starts, once a second while it waits, at
// the drain timeout, and when it is done.
func TestShutdownLogsTheDrain(t *testing.T) {
	t.Parallel()
	queue := brokertest.Name(t, "rpc")
	got := make(chan struct{}, 1)
	warrentest.FakeWorker(t, queue, func(*amqp.Channel, amqp.Delivery) { got <- struct{}{} }) // never replies
	cfg := gwConfig{RPCQueue: queue}.names(t)
	var log jsonLog
	gw := warrentest.StartGateway(t, gwConfigLogged(cfg, 1500*time.Millisecond, &log), cfg.services()...)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := warrenv1.NewFibonacciServiceClient(gw.Conn).Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
		errc <- err
	}()
	<-got
	gw.Stop()
	wantCode(t, <-errc, codes.Unavailable)

	out := log.String()
	want := []string{
		`"msg":"gateway: draining","calls":1,`,
		`"msg":"gateway: waiting for in-flight calls","calls":1,`,
		`"msg":"gateway: drain timeout; cancelling in-flight calls","timeout":1500000000,"calls":1,`,
		`"msg":"gateway: drained"`,
		`"msg":"gateway: broker connection closed"`,
	}
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Fatalf("no %s after byte %d of the log:\n%s", w, at, out)
		}
		at += i + len(w)
	}
}

// gwConfigLogged is the gateway.Config of cfg with a drain timeout and a
// JSON logger writing to log.
func gwConfigLogged(cfg gwConfig, drain time.Duration, log *jsonLog) gateway.Config {
	return gateway.Config{AMQP: cfg.AMQP, DrainTimeout: drain, Logger: slog.New(slog.NewJSONHandler(log, nil))}
}
