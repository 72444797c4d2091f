package route_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/route"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAccessLogOfRoutes: a routed service, with no code of its own for
// it, logs its RPC calls with their correlation ids and its TASK calls
// with their task ids.
func TestAccessLogOfRoutes(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	svcs, err := route.NewServices(route.Config{Prefix: prefix, PresenceInterval: 50 * time.Millisecond},
		warrentest.DescriptorSet(t, inventoryv1.File_inventory_v1_inventory_proto))
	if err != nil {
		t.Fatal(err)
	}
	var gs []gateway.Service
	for _, s := range svcs {
		gs = append(gs, s)
	}
	var log syncBuffer
	gw := warrentest.StartGateway(t, gateway.Config{AccessLog: slog.New(slog.NewTextHandler(&log, nil))}, gs...)
	client := inventoryv1.NewInventoryServiceClient(gw.Conn)
	startStore(t, prefix, tea(1))
	ctx := warrentest.Ctx(t)

	warrentest.Eventually(t, 10*time.Second, "GetItem answered", func() bool {
		_, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "tea"})
		return err == nil
	})
	var resp *inventoryv1.RestockResponse
	warrentest.Eventually(t, 10*time.Second, "Restock accepted", func() bool {
		resp, err = client.Restock(ctx, &inventoryv1.RestockRequest{Sku: "tea", Count: 1})
		return err == nil
	})
	lines := log.String()
	if countLines(lines, "msg=call method=/inventory.v1.InventoryService/GetItem code=OK", "correlation_id=") < 1 {
		t.Errorf("no OK GetItem line with a correlation id in:\n%s", lines)
	}
	if countLines(lines, "msg=call method=/inventory.v1.InventoryService/Restock code=OK", "task_id="+resp.GetTaskId()) != 1 {
		t.Errorf("no Restock line with task_id=%s in:\n%s", resp.GetTaskId(), lines)
	}
	warrentest.Eventually(t, 10*time.Second, "the task ran: 2 in stock", func() bool {
		got, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "tea"})
		return err == nil && got.GetItem().GetStock() == 2
	})
}

// countLines counts the lines of s that hold every one of parts.
func countLines(s string, parts ...string) int {
	n := 0
	for line := range strings.SplitSeq(s, "\n") {
		all := line != ""
		for _, part := range parts {
			all = all && strings.Contains(line, part)
		}
		if all {
			n++
		}
	}
	return n
}
