package route_test

import (
	"context"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
)

// watch subscribes with keys and waits for the header that says the
// queue is bound.
func watch(t *testing.T, client inventoryv1.InventoryServiceClient, keys ...string) grpc.ServerStreamingClient[inventoryv1.StockLevel] {
	t.Helper()
	stream, err := client.WatchLevels(warrentest.Ctx(t), &inventoryv1.WatchLevelsRequest{BindingKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	h, err := stream.Header()
	if err != nil {
		t.Fatalf("WatchLevels%v: %v", keys, err)
	}
	if len(h.Get(wire.HeaderQueue)) != 1 {
		t.Fatalf("header %v, want %s", h, wire.HeaderQueue)
	}
	return stream
}

func TestSubscribeRouteStreamsWhatTheEventRoutePublishes(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	ctx := warrentest.Ctx(t)
	teaOnly := watch(t, client, "tea.*")
	outOnly := watch(t, client, "*.LEVEL_OUT")

	levels := []*inventoryv1.StockLevel{
		{Sku: "tea", Level: inventoryv1.StockLevel_LEVEL_LOW, Stock: 2},
		{Sku: "coffee", Level: inventoryv1.StockLevel_LEVEL_OUT},
		{Sku: "tea", Level: inventoryv1.StockLevel_LEVEL_OUT},
	}
	for _, l := range levels {
		if _, err := client.ReportLevel(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name   string
		stream grpc.ServerStreamingClient[inventoryv1.StockLevel]
		want   []*inventoryv1.StockLevel
	}{
		{"tea.*", teaOnly, []*inventoryv1.StockLevel{levels[0], levels[2]}},
		{"*.LEVEL_OUT", outOnly, []*inventoryv1.StockLevel{levels[1], levels[2]}},
	} {
		for i, want := range tt.want {
			got, err := tt.stream.Recv()
			if err != nil {
				t.Fatalf("%s: message %d: %v", tt.name, i, err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("%s: message %d = %v, want %v", tt.name, i, got, want)
			}
		}
	}
}

// TestSubscribeRouteSkipsWhatIsNotItsResponse: a foreign publisher's
// message that cannot be a StockLevel is skipped; the stream goes on.
func TestSubscribeRouteSkipsWhatIsNotItsResponse(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	stream := watch(t, client, "#")
	ch := brokertest.Channel(t)
	good, _ := proto.Marshal(&inventoryv1.StockLevel{Sku: "tea", Stock: 1})
	for _, p := range []amqp.Publishing{
		{Type: "inventory.v1.Item", Body: good},
		{ContentType: "application/json", Body: []byte(`{"sku":"tea"}`)},
		{Body: []byte{0xff, 0xff, 0xff}},
		{ContentType: wire.ContentTypeProtobuf, Type: "inventory.v1.StockLevel", Body: good},
	} {
		if err := ch.PublishWithContext(context.Background(), prefix+eventsExchange, "tea.x", false, false, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := stream.Recv()
	if err != nil || got.GetSku() != "tea" || got.GetStock() != 1 {
		t.Fatalf("Recv = %v, %v; want the one StockLevel", got, err)
	}
}

func TestSubscribeRouteRefusesBadKeys(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	for name, keys := range map[string][]string{
		"none":            nil,
		"mixed wildcards": {"tea*.x"},
		"too long":        {string(make([]byte, 256))},
	} {
		stream, err := client.WatchLevels(warrentest.Ctx(t), &inventoryv1.WatchLevelsRequest{BindingKeys: keys})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("WatchLevels with %s keys: %v, want INVALID_ARGUMENT", name, err)
		}
	}
}
