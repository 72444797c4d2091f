package route_test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
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
	})
	return prefix
}
