package tasksvc_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
)

// TestBadInputTaskService: malformed requests at every RPC of TaskService,
// as raw bytes (see warrentest.RunBadCases); a good SubmitTask is served
// after each.
func TestBadInputTaskService(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	declareQueue(t, n.queue) // as a worker would: tasks pile up there until cleanup
	_, gw := startGateway(t, n.config())
	const (
		submit = "/warren.v1.TaskService/SubmitTask"
		watch  = "/warren.v1.TaskService/WatchTasks"
		stats  = "/warren.v1.TaskService/GetQueueStats"
	)
	sub := func(body, key string) []byte {
		return warrentest.BadMarshal(t, &warrenv1.SubmitTaskRequest{Body: body, IdempotencyKey: key})
	}
	const maxID = tasksvc.MaxIDLen
	cases := []warrentest.BadCase{
		{Name: "submit empty request", Method: submit, Msgs: [][]byte{nil}, Want: codes.OK},
		{Name: "submit idempotency key at the limit", Method: submit, Msgs: [][]byte{sub("x", strings.Repeat("k", maxID))}, Want: codes.OK},
		{Name: "submit idempotency key over the limit", Method: submit, Msgs: [][]byte{sub("x", strings.Repeat("k", maxID+1))}, Want: codes.InvalidArgument, WantMsg: "longer than"},
		{Name: "submit idempotency key of 256 bytes", Method: submit, Msgs: [][]byte{sub("x", strings.Repeat("k", 256))}, Want: codes.InvalidArgument, WantMsg: "longer than"},
		{Name: "submit idempotency key of wildcards", Method: submit, Msgs: [][]byte{sub("x", "#.*")}, Want: codes.OK},
		{Name: "submit body of 3 MiB", Method: submit, Msgs: [][]byte{sub(strings.Repeat(".", 3<<20), "")}, Want: codes.OK},
		{Name: "submit body over 4 MiB", Method: submit, Msgs: [][]byte{sub(warrentest.BadHuge(), "")}, Want: codes.ResourceExhausted, WantMsg: "larger than max"},
		{Name: "submit body invalid UTF-8", Method: submit, Msgs: [][]byte{warrentest.BadString(1, warrentest.BadInvalidUTF8)}, Want: codes.Internal, WantMsg: "invalid UTF-8"},
		{Name: "submit idempotency key invalid UTF-8", Method: submit, Msgs: [][]byte{warrentest.BadString(2, warrentest.BadInvalidUTF8)}, Want: codes.Internal, WantMsg: "invalid UTF-8"},
		{Name: "submit garbage bytes", Method: submit, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.Internal},
		{Name: "submit unknown fields only", Method: submit, Msgs: [][]byte{warrentest.BadJoin(warrentest.BadVarint(7, 1), warrentest.BadString(8, "x"))}, Want: codes.OK},
		{Name: "watch empty request", Method: watch, Kind: warrentest.BadServerStream, Msgs: [][]byte{nil}, Want: codes.OK},
		{Name: "watch task id of wildcards", Method: watch, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, "#")}, Want: codes.OK},
		{Name: "watch task id at the limit", Method: watch, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, strings.Repeat("k", maxID))}, Want: codes.OK},
		{Name: "watch task id over the limit", Method: watch, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, strings.Repeat("k", maxID+1))}, Want: codes.InvalidArgument, WantMsg: "longer than"},
		{Name: "watch task id of 300 bytes", Method: watch, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, strings.Repeat("k", 300))}, Want: codes.InvalidArgument},
		{Name: "watch task id invalid UTF-8", Method: watch, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, warrentest.BadInvalidUTF8)}, Want: codes.Internal, WantMsg: "invalid UTF-8"},
		{Name: "watch over 4 MiB", Method: watch, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, warrentest.BadHuge())}, Want: codes.ResourceExhausted},
		{Name: "stats with unknown fields", Method: stats, Msgs: [][]byte{warrentest.BadVarint(5, 1)}, Want: codes.OK},
		{Name: "stats garbage bytes", Method: stats, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.Internal},
	}
	client := warrenv1.NewTaskServiceClient(gw.Conn)
	warrentest.RunBadCases(t, gw.Conn, cases, func(ctx context.Context) error {
		_, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: "good."})
		return err
	})
}
