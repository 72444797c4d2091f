package core_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/warrenrpc/warren/core"
)

func TestNoteCall(t *testing.T) {
	t.Parallel()
	// Without a CallInfo in the context, a note is dropped.
	core.NoteCall(context.Background(), core.NoteTaskID, "dropped")
	var none *core.CallInfo
	if got := none.Attrs(); got != nil {
		t.Errorf("nil CallInfo's Attrs = %v, want none", got)
	}

	ctx, ci := core.WithCallInfo(context.Background())
	core.NoteCall(ctx, core.NoteCorrelationID, "c1")
	core.NoteCall(ctx, core.NoteTaskID, "t1")
	core.NoteCall(ctx, core.NoteCorrelationID, "c2") // a retried request
	core.NoteCall(ctx, core.NoteTaskID, "")          // nothing to say
	want := []slog.Attr{slog.String("correlation_id", "c2"), slog.String("task_id", "t1")}
	if got := ci.Attrs(); !slices.EqualFunc(got, want, slog.Attr.Equal) {
		t.Errorf("Attrs = %v, want %v", got, want)
	}
}
