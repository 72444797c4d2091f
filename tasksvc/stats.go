package tasksvc

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

// GetQueueStats reports the work queue's counts.
//
// The ready count and the consumers come from a passive queue.declare on
// the AMQP connection, so they are current. The unacknowledged count is
// known only to the management HTTP API, which refreshes it every few
// seconds (collect_statistics_interval, 5s by default). When the
// management API is not reachable the call fails with FAILED_PRECONDITION
// and says how to enable it; the API's URL goes to the log only.
func (s *Service) GetQueueStats(ctx context.Context, _ *warrenv1.GetQueueStatsRequest) (*warrenv1.GetQueueStatsResponse, error) {
	q, err := s.inspect.Queue(ctx, s.cfg.Queue)
	if err != nil {
		return nil, fmt.Errorf("tasksvc: queue %q: %w", s.cfg.Queue, err)
	}
	mq, err := s.managementQueue(ctx, s.inspect.Vhost())
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

// managementQueue is the part of GET /api/queues/{vhost}/{name} warren
// reads.
type managementQueue struct {
	MessagesUnacknowledged uint64 `json:"messages_unacknowledged"`
}

// managementError is a failure of the management API as a caller sees
// it: a code and what to do about it, never the API's URL or credentials,
// which go to the gateway's log.
type managementError struct {
	code codes.Code
	msg  string
}

func (e *managementError) Error() string { return e.msg }

// GRPCStatus makes the error reach the caller with its code.
func (e *managementError) GRPCStatus() *status.Status { return status.New(e.code, e.msg) }

// enableHint tells a caller how to make GetQueueStats work.
const enableHint = "enable it with `rabbitmq-plugins enable rabbitmq_management` and point the gateway's --management-url at it"

// managementQueue reads the work queue from the management API.
func (s *Service) managementQueue(ctx context.Context, vhost string) (*managementQueue, error) {
	if vhost == "" {
		vhost = "/"
	}
	base, err := url.Parse(s.cfg.ManagementURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		// The parse error quotes the URL, password and all: log neither.
		s.log.Warn("tasksvc: the management API URL does not parse as http(s)://user:password@host:port")
		return nil, &managementError{codes.FailedPrecondition,
			"tasksvc: the gateway's RabbitMQ management API URL is not valid; check its --management-url"}
	}
	redacted := base.Redacted()
	// The default vhost "/" must travel as %2F.
	u := strings.TrimRight(base.String(), "/") + "/api/queues/" + url.PathEscape(vhost) + "/" + url.PathEscape(s.cfg.Queue)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		s.log.Warn("tasksvc: management API request", "url", redacted, "err", err)
		return nil, &managementError{codes.FailedPrecondition,
			"tasksvc: the gateway's RabbitMQ management API URL is not valid; check its --management-url"}
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("tasksvc: management API: %w", ctx.Err())
		}
		// net/http strips the password from the URL in its errors.
		s.log.Warn("tasksvc: management API not reachable", "url", redacted, "err", err)
		var nerr *net.OpError
		if errors.As(err, &nerr) && nerr.Op == "dial" {
			return nil, &managementError{codes.FailedPrecondition,
				"tasksvc: the RabbitMQ management API is not reachable from the gateway; " + enableHint}
		}
		return nil, &managementError{codes.Unavailable, "tasksvc: the RabbitMQ management API did not answer; try again"}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		s.log.Warn("tasksvc: management API refused the credentials", "url", redacted, "status", resp.Status)
		return nil, &managementError{codes.FailedPrecondition, fmt.Sprintf(
			"tasksvc: the RabbitMQ management API refused the gateway's credentials (%s); check the user and password of its --management-url", resp.Status)}
	case resp.StatusCode == http.StatusForbidden:
		s.log.Warn("tasksvc: management API refused the user", "url", redacted, "status", resp.Status)
		return nil, &managementError{codes.FailedPrecondition, fmt.Sprintf(
			"tasksvc: the RabbitMQ management API refused the gateway's credentials (%s); give the user of its --management-url the monitoring tag", resp.Status)}
	case resp.StatusCode == http.StatusNotFound:
		return nil, &managementError{codes.NotFound, fmt.Sprintf(
			"tasksvc: the RabbitMQ management API does not know queue %q in vhost %q", s.cfg.Queue, vhost)}
	case resp.StatusCode != http.StatusOK:
		s.log.Warn("tasksvc: management API", "url", redacted, "status", resp.Status)
		return nil, &managementError{codes.Unavailable, fmt.Sprintf(
			"tasksvc: the RabbitMQ management API answered %s; try again", resp.Status)}
	}
	var mq managementQueue
	if err := json.Unmarshal(body, &mq); err != nil {
		s.log.Warn("tasksvc: management API: undecodable queue", "url", redacted, "err", err)
		return nil, &managementError{codes.Unavailable, "tasksvc: the RabbitMQ management API answered something that is not a queue"}
	}
	return &mq, nil
}
