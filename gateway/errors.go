package gateway

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of the AMQP request/reply path. Handlers turn them into gRPC
// status errors with toStatus, once, at the boundary.
var (
	// ErrNotConnected: the gateway holds no broker connection right now.
	ErrNotConnected = errors.New("gateway: not connected to the broker")
	// ErrConnectionLost: the connection closed while the call waited for
	// its reply.
	ErrConnectionLost = errors.New("gateway: broker connection lost before the reply")
	// ErrNoQueue: the request queue does not exist (no worker ever
	// declared it, or it was deleted).
	ErrNoQueue = errors.New("gateway: request queue does not exist")
	// ErrNoWorker: the request queue exists but nothing consumes it.
	ErrNoWorker = errors.New("gateway: no worker is consuming the request queue")
	// ErrBlocked: the broker blocks publishing (a memory or disk alarm).
	ErrBlocked = errors.New("gateway: the broker blocks publishing (resource alarm)")
)

// errBlockedStatus is what publishing calls answer while the broker blocks
// publishing.
var errBlockedStatus = status.Error(codes.ResourceExhausted, ErrBlocked.Error())

// ReplyError is a worker's error, sent back as data in the reply's headers.
type ReplyError struct {
	Code    codes.Code
	Message string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("gateway: worker error %v: %s", e.Code, e.Message)
}

// toStatus maps an error of the request/reply path to a gRPC status error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var re *ReplyError
	switch {
	case errors.As(err, &re):
		return status.Error(re.Code, re.Message)
	case errors.Is(err, ErrBlocked):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "no reply from a worker before the deadline")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "call cancelled")
	case errors.Is(err, ErrNoWorker), errors.Is(err, ErrNoQueue),
		errors.Is(err, ErrNotConnected), errors.Is(err, ErrConnectionLost):
		return status.Error(codes.Unavailable, err.Error())
	}
	// Anything else comes from the broker connection (a failed publish on
	// a closed channel): the caller may retry.
	return status.Error(codes.Unavailable, err.Error())
}
