package route_test

import (
	"regexp"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
)

func TestTaskRouteQueuesDurableTasksForTheSDKWorker(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	ctx := warrentest.Ctx(t)

	// Before a worker declared the work queue, there is nowhere to put a
	// task: UNAVAILABLE, nothing kept.
	_, err := client.Restock(ctx, &inventoryv1.RestockRequest{Sku: "tea", Count: 5})
	warrentest.WantCode(t, err, codes.Unavailable)

	startStore(t, prefix, tea(1))
	var resp *inventoryv1.RestockResponse
	warrentest.Eventually(t, 10*time.Second, "Restock accepted", func() bool {
		resp, err = client.Restock(ctx, &inventoryv1.RestockRequest{Sku: "tea", Count: 5})
		return err == nil
	})
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(resp.GetTaskId()) {
		t.Errorf("task id %q, want 32 hex digits", resp.GetTaskId())
	}
	warrentest.Eventually(t, 10*time.Second, "the task ran: 6 in stock", func() bool {
		got, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "tea"})
		return err == nil && got.GetItem().GetStock() == 6
	})

	// A task the handler fails (no such item) is rejected, not retried:
	// the queue empties and the stock stays.
	if _, err := client.Restock(ctx, &inventoryv1.RestockRequest{Sku: "coffee", Count: 1}); err != nil {
		t.Fatal(err)
	}
	ch := brokertest.Channel(t)
	warrentest.Eventually(t, 10*time.Second, "the failed task left the queue", func() bool {
		q, err := ch.QueueDeclarePassive(prefix+restockQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		return err == nil && q.Messages == 0
	})
}

func TestTaskRoutePublishesWhatTheWireContractSays(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(prefix+restockQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	ctx := warrentest.Ctx(t)
	resp, err := client.Restock(ctx, &inventoryv1.RestockRequest{Sku: "tea", Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	d, ok, err := ch.Get(prefix+restockQueue, true)
	if err != nil || !ok {
		t.Fatalf("get the task: %v, %v; want it in the queue once confirmed", ok, err)
	}
	var req inventoryv1.RestockRequest
	if err := proto.Unmarshal(d.Body, &req); err != nil || req.GetSku() != "tea" || req.GetCount() != 5 {
		t.Errorf("task body: %v, %v", &req, err)
	}
	if d.MessageId != resp.GetTaskId() || d.DeliveryMode != amqp.Persistent || d.Type != "inventory.v1.RestockRequest" || d.ContentType != wire.ContentTypeProtobuf {
		t.Errorf("task properties: message_id %q (task %q), delivery mode %d, type %q, content type %q",
			d.MessageId, resp.GetTaskId(), d.DeliveryMode, d.Type, d.ContentType)
	}
}

func TestEventRoutePublishesWithTheRoutingKeyOfItsTemplate(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	ch := brokertest.Channel(t)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway declared the exchange when it connected.
	if err := ch.QueueBind(q.Name, "tea.LEVEL_LOW", prefix+eventsExchange, false, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := warrentest.Ctx(t)
	for _, level := range []inventoryv1.StockLevel_Level{inventoryv1.StockLevel_LEVEL_OK, inventoryv1.StockLevel_LEVEL_LOW} {
		if _, err := client.ReportLevel(ctx, &inventoryv1.StockLevel{Sku: "tea", Level: level, Stock: 2}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case d := <-ds:
		var req inventoryv1.StockLevel
		if err := proto.Unmarshal(d.Body, &req); err != nil || req.GetLevel() != inventoryv1.StockLevel_LEVEL_LOW {
			t.Errorf("event body %v, %v; want the LOW one alone (bound to tea.LEVEL_LOW)", &req, err)
		}
		if d.RoutingKey != "tea.LEVEL_LOW" || d.DeliveryMode != amqp.Persistent || d.Type != "inventory.v1.StockLevel" {
			t.Errorf("event: routing key %q, delivery mode %d, type %q", d.RoutingKey, d.DeliveryMode, d.Type)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}
	select {
	case d := <-ds:
		t.Errorf("a second event, routed %q: the OK one was not bound", d.RoutingKey)
	case <-time.After(200 * time.Millisecond):
	}
}
