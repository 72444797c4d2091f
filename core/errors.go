package core

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// The errors of the core. Every component returns them (wrapped with what
// it was doing), and Status turns them into gRPC statuses in one place.
var (
	// ErrNotConnected: there is no broker connection right now.
	ErrNotConnected = errors.New("core: not connected to the broker")
	// ErrConnectionLost: the connection or channel closed while a call
	// waited for the broker or a worker.
	ErrConnectionLost = errors.New("core: broker connection lost")
	// ErrBlocked: the broker blocks publishing (a memory or disk alarm).
	ErrBlocked = errors.New("core: the broker blocks publishing (resource alarm)")
	// ErrNacked: the broker did not take a publishing (basic.nack); it may
	// be retried.
	ErrNacked = errors.New("core: the broker did not take the publishing (nack)")
	// ErrNoQueue: the queue a request or task is meant for does not exist:
	// no worker ever declared it, or it was deleted.
	ErrNoQueue = errors.New("core: queue does not exist")
	// ErrNoConsumer: the queue exists but no worker consumes it.
	ErrNoConsumer = errors.New("core: no worker is consuming the queue")
	// ErrUncounted: the broker answered a question about a queue's counts
	// with nothing (see uncountedAfter): they are unknown, not zero.
	ErrUncounted = errors.New("core: the broker did not count the queue in time")
	// ErrShutdown: the component is shutting down.
	ErrShutdown = errors.New("core: shutting down")
	// ErrOverflow: a subscription's client read too slowly; its backlog
	// (its queue, or its buffer in a Mux) reached its length limit and
	// messages were dropped.
	ErrOverflow = errors.New("core: subscription too slow: its backlog reached its length limit and messages were dropped")
	// ErrTooManyChannels: the connection has no channel left
	// (channel_max), so no further subscription fits on it.
	ErrTooManyChannels = errors.New("core: too many subscriptions on this broker connection")
)

// ReplyError is a worker's error, sent back as data in the reply's
// headers (see package wire).
type ReplyError struct {
	Code    codes.Code
	Message string
	// Details are the status details the worker sent, if any
	// (wire.HeaderErrorStatus).
	Details []*anypb.Any
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("core: worker error %v: %s", e.Code, e.Message)
}

// GRPCStatus makes a ReplyError travel as the worker's status.
func (e *ReplyError) GRPCStatus() *status.Status {
	if len(e.Details) == 0 {
		return status.New(e.Code, e.Message)
	}
	return status.FromProto(&spb.Status{Code: int32(e.Code), Message: e.Message, Details: e.Details})
}

// ReturnError is a mandatory publishing the broker returned because no
// queue took it (basic.return). It matches ErrNoQueue with errors.Is.
type ReturnError struct {
	Exchange   string
	RoutingKey string
	Code       uint16
	Text       string
}

func (e *ReturnError) Error() string {
	if e.Exchange == "" {
		return fmt.Sprintf("core: queue %q does not exist (publishing returned by the broker: %d %s)", e.RoutingKey, e.Code, e.Text)
	}
	return fmt.Sprintf("core: no queue is bound to exchange %q with routing key %q (publishing returned by the broker: %d %s)",
		e.Exchange, e.RoutingKey, e.Code, e.Text)
}

// Is reports a return as ErrNoQueue.
func (e *ReturnError) Is(target error) bool { return target == ErrNoQueue }

// argumentError is a caller's mistake.
type argumentError struct{ msg string }

func (e *argumentError) Error() string { return e.msg }

// Argumentf returns an error that reaches the caller as INVALID_ARGUMENT
// with the formatted message.
func Argumentf(format string, args ...any) error {
	return &argumentError{msg: fmt.Sprintf(format, args...)}
}

// Status maps any error a handler returns to a gRPC status error. It is
// the one place where errors become codes; the gateway installs it as
// unary and stream interceptors. nil stays nil, and an error that already
// carries a status (status.Error, *ReplyError) keeps it.
//
//   - context.Canceled → CANCELLED; context.DeadlineExceeded → DEADLINE_EXCEEDED
//   - Argumentf → INVALID_ARGUMENT
//   - *OffsetError (a start outside a history) → OUT_OF_RANGE;
//     ErrHistoryOff → FAILED_PRECONDITION
//   - ErrBlocked, ErrOverflow, ErrTooManyChannels, amqp.ErrChannelMax → RESOURCE_EXHAUSTED
//   - a broker's 403 (ACCESS_REFUSED) → PERMISSION_DENIED; its 404 → NOT_FOUND
//     (ErrNoQueue, a missing worker queue, is UNAVAILABLE: a worker may come)
//   - everything else (no connection, lost connection, nack, return, no
//     consumer, shutdown) → UNAVAILABLE: the caller may retry.
//
// The message is the error's text: errors of the core never carry a URL
// or a credential.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	var (
		arg  *argumentError
		off  *OffsetError
		aerr *amqp.Error
	)
	code := codes.Unavailable
	switch {
	case errors.As(err, &arg):
		code = codes.InvalidArgument
	case errors.As(err, &off):
		code = codes.OutOfRange
	case errors.Is(err, ErrHistoryOff):
		code = codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, ErrBlocked), errors.Is(err, ErrOverflow),
		errors.Is(err, ErrTooManyChannels), errors.Is(err, amqp.ErrChannelMax):
		code = codes.ResourceExhausted
	case errors.Is(err, ErrNoQueue), errors.Is(err, ErrNoConsumer):
		code = codes.Unavailable
	case errors.Is(err, ErrOutOfScope),
		errors.As(err, &aerr) && aerr.Code == amqp.AccessRefused:
		code = codes.PermissionDenied
	case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
		code = codes.NotFound
	}
	return status.Error(code, err.Error())
}
