package route_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestRoutedMethodsBadInput: malformed requests to every pattern get a
// clear status, nothing is published where it should not be, and the
// gateway and the SDK worker keep serving.
func TestRoutedMethodsBadInput(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	gw, client := startInventory(t, prefix)
	startStore(t, prefix, tea(1000))
	waitServing(t, gw, "inventory.v1.InventoryService")
	const svc = "/inventory.v1.InventoryService/"
	huge := warrentest.BadString(1, warrentest.BadHuge())
	badUTF8 := warrentest.BadString(1, warrentest.BadInvalidUTF8)
	longSKU := warrentest.BadMarshal(t, &inventoryv1.StockLevel{Sku: strings.Repeat("s", 300)})
	cases := []warrentest.BadCase{
		{Name: "unknown method", Method: svc + "Nope", Kind: warrentest.BadUnary, Msgs: [][]byte{nil}, Want: codes.Unimplemented},
		{Name: "unknown service", Method: "/inventory.v1.Nope/GetItem", Kind: warrentest.BadUnary, Msgs: [][]byte{nil}, Want: codes.Unimplemented},
		{Name: "method without a route", Method: svc + "Audit", Kind: warrentest.BadUnary, Msgs: [][]byte{nil}, Want: codes.Unimplemented},

		{Name: "rpc: garbage", Method: svc + "GetItem", Kind: warrentest.BadUnary, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.InvalidArgument, WantMsg: "not a inventory.v1.GetItemRequest"},
		{Name: "rpc: invalid UTF-8 (the worker decodes)", Method: svc + "Reserve", Kind: warrentest.BadUnary, Msgs: [][]byte{badUTF8}, Want: codes.InvalidArgument, WantMsg: "worker: the request is not a inventory.v1.ReserveRequest"},
		{Name: "rpc: invalid UTF-8 (the JSON codec decodes)", Method: svc + "GetItem", Kind: warrentest.BadUnary, Msgs: [][]byte{badUTF8}, Want: codes.InvalidArgument, WantMsg: "the request is not a inventory.v1.GetItemRequest"},
		{Name: "rpc: over 4 MiB", Method: svc + "GetItem", Kind: warrentest.BadUnary, Msgs: [][]byte{huge}, Want: codes.ResourceExhausted},

		{Name: "task: garbage", Method: svc + "Restock", Kind: warrentest.BadUnary, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.InvalidArgument},
		{Name: "task: invalid UTF-8, refused before it is queued", Method: svc + "Restock", Kind: warrentest.BadUnary, Msgs: [][]byte{badUTF8}, Want: codes.InvalidArgument, WantMsg: "not a inventory.v1.RestockRequest"},
		{Name: "task: over 4 MiB", Method: svc + "Restock", Kind: warrentest.BadUnary, Msgs: [][]byte{huge}, Want: codes.ResourceExhausted},

		{Name: "event: garbage", Method: svc + "ReportLevel", Kind: warrentest.BadUnary, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.InvalidArgument},
		{Name: "event: routing key over 255 bytes", Method: svc + "ReportLevel", Kind: warrentest.BadUnary, Msgs: [][]byte{longSKU}, Want: codes.InvalidArgument, WantMsg: "routing key of 318 bytes"},
		{Name: "event: invalid UTF-8", Method: svc + "ReportLevel", Kind: warrentest.BadUnary, Msgs: [][]byte{badUTF8}, Want: codes.InvalidArgument},

		{Name: "subscribe: garbage", Method: svc + "WatchLevels", Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.InvalidArgument},
		{Name: "subscribe: no keys", Method: svc + "WatchLevels", Kind: warrentest.BadServerStream, Msgs: [][]byte{nil}, Want: codes.InvalidArgument, WantMsg: "needs at least one binding key"},
		{Name: "subscribe: a key over 255 bytes", Method: svc + "WatchLevels", Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, strings.Repeat("k", 256))}, Want: codes.InvalidArgument},
		{Name: "subscribe: good keys set up", Method: svc + "WatchLevels", Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadString(1, "tea.*")}, Want: codes.OK},

		{Name: "stream: garbage", Method: svc + "Stocktake", Kind: warrentest.BadServerStream, Msgs: [][]byte{warrentest.BadGarbage}, Want: codes.InvalidArgument},
		{Name: "stream: invalid UTF-8 (the worker decodes)", Method: svc + "Stocktake", Kind: warrentest.BadServerStream, Msgs: [][]byte{badUTF8}, Want: codes.InvalidArgument},
		{Name: "stream: over 4 MiB", Method: svc + "Stocktake", Kind: warrentest.BadServerStream, Msgs: [][]byte{huge}, Want: codes.ResourceExhausted},
	}
	warrentest.RunBadCases(t, gw.Conn, cases, func(ctx context.Context) error {
		_, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "tea"})
		return err
	})
	// The refused task never reached the queue: the store's stock is as
	// it was, and nothing is left in the work queue.
	got, err := client.GetItem(warrentest.Ctx(t), &inventoryv1.GetItemRequest{Sku: "tea"})
	if err != nil || got.GetItem().GetStock() != 1000 {
		t.Errorf("GetItem(tea) = %v, %v; want the stock untouched", got, err)
	}
}
