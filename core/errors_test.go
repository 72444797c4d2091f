package core

import (
	"context"
	"errors"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStatusMapsEveryErrorOnce(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("do something: %w", err) }
	tests := []struct {
		name    string
		err     error
		want    codes.Code
		wantMsg string // empty: the error's own text
	}{
		{name: "nil", err: nil, want: codes.OK},
		{name: "context cancelled", err: context.Canceled, want: codes.Canceled},
		{name: "wrapped deadline", err: wrap(context.DeadlineExceeded), want: codes.DeadlineExceeded},
		{name: "argument", err: Argumentf("n = %d is too large", 7), want: codes.InvalidArgument, wantMsg: "n = 7 is too large"},
		{name: "wrapped argument", err: wrap(Argumentf("bad")), want: codes.InvalidArgument},
		{name: "not connected", err: ErrNotConnected, want: codes.Unavailable},
		{name: "connection lost", err: wrap(ErrConnectionLost), want: codes.Unavailable},
		{name: "blocked", err: ErrBlocked, want: codes.ResourceExhausted},
		{name: "wrapped blocked", err: fmt.Errorf("%w: low memory", ErrBlocked), want: codes.ResourceExhausted},
		{name: "nacked", err: ErrNacked, want: codes.Unavailable},
		{name: "no queue", err: fmt.Errorf("%w: %q", ErrNoQueue, "q"), want: codes.Unavailable},
		{name: "no consumer", err: fmt.Errorf("%w: %q", ErrNoConsumer, "q"), want: codes.Unavailable},
		{name: "return", err: &ReturnError{RoutingKey: "q", Code: 312, Text: "NO_ROUTE"}, want: codes.Unavailable},
		{name: "shutdown", err: ErrShutdown, want: codes.Unavailable},
		{name: "overflow", err: ErrOverflow, want: codes.ResourceExhausted},
		{name: "history off", err: wrap(ErrHistoryOff), want: codes.FailedPrecondition},
		{name: "offset out of range", err: wrap(&OffsetError{msg: "start offset 9 is past the end"}), want: codes.OutOfRange},
		{name: "too many channels", err: wrap(ErrTooManyChannels), want: codes.ResourceExhausted},
		{name: "amqp channel max", err: amqp.ErrChannelMax, want: codes.ResourceExhausted},
		{name: "broker 403", err: wrap(&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED"}), want: codes.PermissionDenied},
		{name: "broker 404", err: &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange"}, want: codes.NotFound},
		{name: "broker 406", err: &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED"}, want: codes.Unavailable},
		{name: "worker error reply", err: &ReplyError{Code: codes.FailedPrecondition, Message: "not today"}, want: codes.FailedPrecondition, wantMsg: "not today"},
		{name: "status error passes", err: status.Error(codes.AlreadyExists, "dup"), want: codes.AlreadyExists, wantMsg: "dup"},
		{name: "anything else", err: errors.New("boom"), want: codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Status(tt.err)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("Status(nil) = %v, want nil", got)
				}
				return
			}
			st, ok := status.FromError(got)
			if !ok {
				t.Fatalf("Status(%v) = %v, not a status error", tt.err, got)
			}
			want := tt.wantMsg
			if want == "" {
				want = tt.err.Error()
			}
			if st.Code() != tt.want || st.Message() != want {
				t.Errorf("Status(%v) = %v %q, want %v %q", tt.err, st.Code(), st.Message(), tt.want, want)
			}
		})
	}
}

func TestReturnErrorIsErrNoQueue(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("submit: %w", &ReturnError{RoutingKey: "task_queue", Code: 312, Text: "NO_ROUTE"})
	if !errors.Is(err, ErrNoQueue) {
		t.Errorf("errors.Is(%v, ErrNoQueue) = false, want true", err)
	}
}
