package tasksvc_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

func TestQueueStats(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue)
	client, _ := startGateway(t, n.config())
	ctx := testCtx(t)
	for i := range 3 {
		submit(t, ctx, client, fmt.Sprint(i))
	}
	// A consumer with prefetch 1 that never acknowledges holds one.
	ch := brokertest.Channel(t)
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(n.queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-deliveries

	want := &warrenv1.GetQueueStatsResponse{Queue: n.queue, MessagesReady: 2, MessagesUnacknowledged: 1, Consumers: 1}
	var got *warrenv1.GetQueueStatsResponse
	// The management API refreshes its counts every 5s.
	warrentest.Eventually(t, 15*time.Second, "stats ready=2 unacked=1 consumers=1", func() bool {
		got, err = client.GetQueueStats(ctx, &warrenv1.GetQueueStatsRequest{})
		if err != nil {
			t.Fatalf("GetQueueStats: %v", err)
		}
		return got.GetQueue() == want.GetQueue() && got.GetMessagesReady() == want.GetMessagesReady() &&
			got.GetMessagesUnacknowledged() == want.GetMessagesUnacknowledged() && got.GetConsumers() == want.GetConsumers()
	})
}

// TestQueueStatsOfMissingQueue: before any worker declared the queue
// there is nothing to count.
func TestQueueStatsOfMissingQueue(t *testing.T) {
	t.Parallel()
	client, _ := startGateway(t, newNames(t).config())
	_, err := client.GetQueueStats(testCtx(t), &warrenv1.GetQueueStatsRequest{})
	warrentest.WantCode(t, err, codes.NotFound)
}

// TestQueueStatsManagementErrors: when the management API cannot be used,
// the caller learns what to do, and never the API's URL, host or
// credentials (the gateway logs those).
func TestQueueStatsManagementErrors(t *testing.T) {
	t.Parallel()
	mgmt, err := url.Parse(brokertest.ManagementURL())
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword := *mgmt
	wrongPassword.User = url.UserPassword(mgmt.User.Username(), "not-the-password-s3cr3t")
	tests := []struct {
		name    string
		url     string
		want    codes.Code
		wantMsg string
		secrets []string // must not appear in the message
	}{
		{
			name: "not reachable", url: "http://warren-user:s3cr3t@127.0.0.1:1",
			want: codes.FailedPrecondition, wantMsg: "rabbitmq-plugins enable rabbitmq_management",
			secrets: []string{"warren-user", "s3cr3t", "127.0.0.1:1", "http://"},
		},
		{
			name: "wrong credentials", url: wrongPassword.String(),
			want: codes.FailedPrecondition, wantMsg: "refused the gateway's credentials",
			secrets: []string{mgmt.User.Username() + ":", "not-the-password-s3cr3t", mgmt.Host, "http://"},
		},
		{
			name: "not a URL", url: "http://warren-user:s3cr3t@[::1",
			want: codes.FailedPrecondition, wantMsg: "--management-url",
			secrets: []string{"warren-user", "s3cr3t", "::1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNames(t)
			declareQueue(t, n.queue)
			cfg := n.config()
			cfg.ManagementURL = tt.url
			client, _ := startGateway(t, cfg)
			_, err := client.GetQueueStats(testCtx(t), &warrenv1.GetQueueStatsRequest{})
			warrentest.WantCode(t, err, tt.want)
			msg := status.Convert(err).Message()
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("got message %q, want it to contain %q", msg, tt.wantMsg)
			}
			for _, s := range tt.secrets {
				if strings.Contains(msg, s) {
					t.Errorf("got message %q, which shows %q", msg, s)
				}
			}
			t.Logf("%v: %s", status.Code(err), msg)
		})
	}
}
