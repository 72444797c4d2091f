package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// GetQueueStats implements warren.v1.TaskService.
//
// The ready count and the consumers come from a passive queue.declare on
// the AMQP connection, so they are current. The unacknowledged count is
// known only to the management HTTP API, which refreshes it every few
// seconds (collect_statistics_interval, 5s by default). When the management
// plugin is not reachable the call fails with FAILED_PRECONDITION and says
// how to enable it.
func (s *TaskService) GetQueueStats(ctx context.Context, _ *warrenv1.GetQueueStatsRequest) (*warrenv1.GetQueueStatsResponse, error) {
	conn, _, _, err := s.current()
	if err != nil {
		return nil, queueStatus(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, queueStatus(fmt.Errorf("open channel: %w", err))
	}
	q, err := ch.QueueDeclarePassive(s.cfg.Queue, false, false, false, false, nil)
	if err != nil {
		// The 404 closed the channel.
		return nil, status.Errorf(codes.NotFound, "gateway: queue %q: %v", s.cfg.Queue, err)
	}
	_ = ch.Close()
	mq, err := s.managementQueue(ctx, conn.Config.Vhost)
	if err != nil {
		return nil, err
	}
	return &warrenv1.GetQueueStatsResponse{
		Queue:                  s.cfg.Queue,
		MessagesReady:          uint64(max(q.Messages, 0)),
		MessagesUnacknowledged: mq.MessagesUnacknowledged,
		Consumers:              uint32(max(q.Consumers, 0)),
	}, nil
}

// taskManagementQueue is the part of GET /api/queues/{vhost}/{name} warren
// reads.
type taskManagementQueue struct {
	MessagesReady          uint64 `json:"messages_ready"`
	MessagesUnacknowledged uint64 `json:"messages_unacknowledged"`
	Consumers              uint32 `json:"consumers"`
}

// managementQueue reads the task queue from the management API and
// returns a status error on failure.
func (s *TaskService) managementQueue(ctx context.Context, vhost string) (*taskManagementQueue, error) {
	if vhost == "" {
		vhost = "/"
	}
	base, err := url.Parse(s.cfg.ManagementURL)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "gateway: management URL %q: %v", s.cfg.ManagementURL, err)
	}
	// The default vhost "/" must travel as %2F.
	u := strings.TrimRight(base.String(), "/") + "/api/queues/" + url.PathEscape(vhost) + "/" + url.PathEscape(s.cfg.Queue)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "gateway: management request: %v", err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		var nerr *net.OpError
		if errors.As(err, &nerr) && nerr.Op == "dial" {
			return nil, status.Errorf(codes.FailedPrecondition,
				"gateway: RabbitMQ management API not reachable at %s (enable it with `rabbitmq-plugins enable rabbitmq_management`): %v",
				base.Redacted(), err)
		}
		return nil, status.Errorf(codes.Unavailable, "gateway: management API at %s: %v", base.Redacted(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, status.Errorf(codes.FailedPrecondition, "gateway: management API at %s refused the credentials: %s", base.Redacted(), resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return nil, status.Errorf(codes.NotFound, "gateway: management API at %s does not know queue %q in vhost %q", base.Redacted(), s.cfg.Queue, vhost)
	case resp.StatusCode != http.StatusOK:
		return nil, status.Errorf(codes.Unavailable, "gateway: management API at %s: %s", base.Redacted(), resp.Status)
	}
	var mq taskManagementQueue
	if err := json.Unmarshal(body, &mq); err != nil {
		return nil, status.Errorf(codes.Unavailable, "gateway: management API at %s: decode queue: %v", base.Redacted(), err)
	}
	return &mq, nil
}
