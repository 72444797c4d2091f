package route_test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// The example's entities, as its routes name them.
const (
	reserveQueue   = "inventory.reserve"
	getItemQueue   = "inventory.v1.InventoryService.GetItem"
	restockQueue   = "inventory.restock"
	stocktakeQueue = "inventory.stocktake"
	eventsExchange = "inventory.events"
)

// queuePrefix returns a prefix for the routes' queues and exchanges unique
// to the test; the example's entities under it are deleted when the test
// ends.
func queuePrefix(t testing.TB) string {
	t.Helper()
	prefix := brokertest.Name(t, "route") + "."
	t.Cleanup(func() {
		conn, err := amqp.Dial(brokertest.URL())
		if err != nil {
			return
		}
		defer conn.Close()
		for _, q := range []string{reserveQueue, getItemQueue, restockQueue, stocktakeQueue} {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(prefix+q, false, false, false)
				_ = ch.Close()
			}
		}
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(prefix+eventsExchange, false, false)
			_ = ch.Close()
		}
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(prefix+eventsExchange+".history", false, false, false)
			_ = ch.Close()
		}
	})
	return prefix
}

// exerciseInventory checks what every worker of the example must do
// through the gateway, whatever its language: a store holding 5 of tea and
// no coffee, which no call changed before.
func exerciseInventory(t *testing.T, client inventoryv1.InventoryServiceClient) {
	t.Helper()
	ctx := warrentest.Ctx(t)
	t.Run("reply", func(t *testing.T) {
		got, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "tea"})
		if err != nil {
			t.Fatal(err)
		}
		if want := (&inventoryv1.GetItemResponse{Item: tea(5)}); !proto.Equal(got, want) {
			t.Errorf("GetItem = %v, want %v", got, want)
		}
	})
	t.Run("metadata reaches the handler", func(t *testing.T) {
		mdctx := metadata.AppendToOutgoingContext(ctx, "tenant", "acme")
		got, err := client.Reserve(mdctx, &inventoryv1.ReserveRequest{Sku: "tea", Count: 2, OrderId: "o1"})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetReservationId() != "acme/r1" || got.GetLeft() != 3 {
			t.Errorf("Reserve = %v, want reservation acme/r1 with 3 left", got)
		}
	})
	t.Run("an error with details travels as the caller's status", func(t *testing.T) {
		_, err := client.Reserve(ctx, &inventoryv1.ReserveRequest{Sku: "tea", Count: 10})
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != "not enough stock" {
			t.Fatalf("Reserve(10) = %v, want FAILED_PRECONDITION: not enough stock", err)
		}
		want := &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{
			{Type: "STOCK", Subject: "tea", Description: "3 left"},
		}}
		if d := st.Details(); len(d) != 1 || !proto.Equal(pf(d[0]), want) {
			t.Errorf("details %v, want [%v]", d, want)
		}
	})
	t.Run("codes travel", func(t *testing.T) {
		_, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "coffee"})
		if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != `no item "coffee"` {
			t.Errorf("GetItem(coffee) = %v, want NOT_FOUND: no item \"coffee\"", err)
		}
		_, err = client.Reserve(ctx, &inventoryv1.ReserveRequest{Sku: "coffee", Count: 1})
		warrentest.WantCode(t, err, codes.NotFound)
		_, err = client.Reserve(ctx, &inventoryv1.ReserveRequest{Sku: "tea"})
		warrentest.WantCode(t, err, codes.InvalidArgument)
	})
	t.Run("a stream of replies, ended with its status", func(t *testing.T) {
		got, err := stocktake(ctx, t, client, "tea")
		if err != nil || len(got) != 1 || got[0].GetCounted() != 1 || got[0].GetItem().GetSku() != "tea" {
			t.Errorf("Stocktake(tea) = %v, %v; want tea counted", got, err)
		}
		got, err = stocktake(ctx, t, client, "tea", "coffee")
		if status.Code(err) != codes.NotFound || len(got) != 1 {
			t.Errorf("Stocktake(tea, coffee) = %v, %v; want tea, then NOT_FOUND", got, err)
		}
	})
}

// pf is a status detail as a PreconditionFailure, or nil.
func pf(detail any) *errdetails.PreconditionFailure {
	v, _ := detail.(*errdetails.PreconditionFailure)
	return v
}
