package gateway_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestShutdownDrainsInFlightCalls: cancelling the ctx given to Serve (what
// SIGTERM does in cmd/warren) lets a Fibonacci call in flight finish when
// it ends within DrainTimeout, and cancels it when it does not; new calls
// are refused; Serve returns within the drain timeout either way.
func TestShutdownDrainsInFlightCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		work     time.Duration // how long the worker holds the request
		drain    time.Duration
		wantCode codes.Code
	}{
		{name: "finishes within the drain timeout", work: 500 * time.Millisecond, drain: 5 * time.Second, wantCode: codes.OK},
		{name: "cancelled at the drain timeout", work: 10 * time.Second, drain: 300 * time.Millisecond, wantCode: codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Name(t, "rpc")
			got := make(chan struct{}, 1)
			warrentest.FakeWorker(t, queue, func(ch *amqp.Channel, d amqp.Delivery) {
				got <- struct{}{}
				time.AfterFunc(tt.work, func() {
					_ = ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false,
						amqp.Publishing{CorrelationId: d.CorrelationId, Body: []byte("832040")})
					_ = d.Ack(false)
				})
			})
			gw := startRPCGateway(t, gwConfig{
				RPCQueue: queue, DrainTimeout: tt.drain,
				AMQP: proxiedConfig(brokertest.Require(t), queue).AMQP,
			})
			served := make(chan struct{})
			client := gw.fib

			errc := make(chan error, 1)
			go func() {
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer ccancel()
				resp, err := client.Fibonacci(cctx, &warrenv1.FibonacciRequest{N: 30})
				if err == nil && resp.GetValue() != "832040" {
					t.Errorf("got %q, want 832040", resp.GetValue())
				}
				errc <- err
			}()
			<-got
			stopped := time.Now()
			go func() { gw.Stop(); close(served) }() // SIGTERM

			// New calls are refused while the old one drains.
			waitFor(t, "new calls refused", func() bool {
				c, cc := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cc()
				_, err := client.Fibonacci(c, &warrenv1.FibonacciRequest{N: 1}, grpc.WaitForReady(false))
				return err != nil
			})
			err := <-errc
			wantCode(t, err, tt.wantCode)
			<-served // Serve returned (nil, or Stop reports the error)
			took := time.Since(stopped)
			if limit := min(tt.work, tt.drain) + 2*time.Second; took > limit {
				t.Errorf("shutdown took %v, want under %v", took, limit)
			}
			t.Logf("in-flight call: %v; shutdown took %v (work %v, drain timeout %v)", grpcstatus.Code(err), took.Round(time.Millisecond), tt.work, tt.drain)
		})
	}
}
