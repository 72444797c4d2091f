package queuesvc_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestBadInputQueueService: malformed requests at QueueService, as raw
// bytes (see warrentest.RunBadCases); a good call is served after each.
// The 255-byte queue name extends the test's own name with a ".", so the
// test's cleanup deletes it.
func TestBadInputQueueService(t *testing.T) {
	t.Parallel()
	gw := start(t).gw
	queue := brokertest.Name(t, "hola")
	const (
		send = "/warren.v1.QueueService/Send"
		recv = "/warren.v1.QueueService/Receive"
	)
	// Requests without a queue name would use the tutorial's "hola", which
	// other tests share: every case names a queue of its own.
	cases := []warrentest.BadCase{
		{Name: "send empty body", Method: send, Msgs: [][]byte{warrentest.BadString(1, queue)}, Want: codes.OK},
		{Name: "send queue name of 255 bytes", Method: send, Msgs: [][]byte{warrentest.BadString(1, queue+"."+strings.Repeat("q", 254-len(queue)))}, Want: codes.OK},
		{Name: "send queue name over 255 bytes", Method: send, Msgs: [][]byte{warrentest.BadString(1, queue+"."+strings.Repeat("q", 255-len(queue)))}, Want: codes.InvalidArgument},
		{Name: "send reserved queue name", Method: send, Msgs: [][]byte{warrentest.BadString(1, "amq.warren-test")}, Want: codes.PermissionDenied},
		{Name: "send queue name invalid UTF-8", Method: send, Msgs: [][]byte{warrentest.BadString(1, warrentest.BadInvalidUTF8)}, Want: codes.Internal, WantMsg: "invalid UTF-8"},
		{Name: "send body invalid UTF-8", Method: send, Msgs: [][]byte{warrentest.BadJoin(warrentest.BadString(1, queue), warrentest.BadString(2, warrentest.BadInvalidUTF8))}, Want: codes.Internal, WantMsg: "invalid UTF-8"},
		{Name: "send over 4 MiB", Method: send, Msgs: [][]byte{warrentest.BadJoin(warrentest.BadString(1, queue), warrentest.BadString(2, warrentest.BadHuge()))}, Want: codes.ResourceExhausted},
		{Name: "send garbage bytes", Method: send, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.Internal},
		{Name: "receive queue name over 255 bytes", Method: recv, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, strings.Repeat("q", 256))}, Want: codes.InvalidArgument},
		{Name: "receive reserved queue name", Method: recv, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, "amq.warren-test")}, Want: codes.PermissionDenied},
		{Name: "receive queue name invalid UTF-8", Method: recv, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, warrentest.BadInvalidUTF8)}, Want: codes.Internal},
		{Name: "receive over 4 MiB", Method: recv, Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, warrentest.BadHuge())}, Want: codes.ResourceExhausted},
	}
	client := warrenv1.NewQueueServiceClient(gw.Conn)
	warrentest.RunBadCases(t, gw.Conn, cases, func(ctx context.Context) error {
		_, err := client.Send(ctx, &warrenv1.SendRequest{Queue: queue, Body: "good"})
		return err
	})
}
