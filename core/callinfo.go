package core

import (
	"context"
	"log/slog"
	"sync"
)

// The keys the core and the services note on a call (NoteCall).
const (
	// NoteCorrelationID is the correlation id of a Client's request, set
	// by Call and CallStream when they publish it.
	NoteCorrelationID = "correlation_id"
	// NoteTaskID is the id of a task a call submitted, or watches.
	NoteTaskID = "task_id"
)

// A CallInfo is a record of what the core did for one gRPC call, for its
// access log: the ids that let an operator follow the call into the
// broker (its correlation id, its task id). The gateway's access log
// puts one in the call's context (WithCallInfo) before the handler runs
// and reads it (Attrs) once the call ended; the core and the services note
// what they know on it (NoteCall) where they make it. It is safe for
// concurrent use.
type CallInfo struct {
	mu    sync.Mutex
	attrs []slog.Attr
}

type callInfoKey struct{}

// WithCallInfo returns ctx carrying a new CallInfo, and the CallInfo.
func WithCallInfo(ctx context.Context) (context.Context, *CallInfo) {
	ci := &CallInfo{}
	return context.WithValue(ctx, callInfoKey{}, ci), ci
}

// NoteCall records key=value on the CallInfo ctx carries; a later note of
// the same key replaces it (a retried request's last correlation id). It
// does nothing, and costs one context lookup, when ctx carries none: a
// call from a worker, a test, or a gateway without an access log.
func NoteCall(ctx context.Context, key, value string) {
	ci, ok := ctx.Value(callInfoKey{}).(*CallInfo)
	if !ok || value == "" {
		return
	}
	ci.mu.Lock()
	defer ci.mu.Unlock()
	for i := range ci.attrs {
		if ci.attrs[i].Key == key {
			ci.attrs[i].Value = slog.StringValue(value)
			return
		}
	}
	ci.attrs = append(ci.attrs, slog.String(key, value))
}

// Attrs returns what was noted, in the order the keys were first noted.
// A nil CallInfo has none.
func (ci *CallInfo) Attrs() []slog.Attr {
	if ci == nil {
		return nil
	}
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return append([]slog.Attr(nil), ci.attrs...)
}
