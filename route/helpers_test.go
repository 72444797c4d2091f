package route_test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// queuePrefix returns a prefix for the routes' queues unique to the test;
// the queues it names are deleted when the test ends.
func queuePrefix(t testing.TB, queues ...string) string {
	t.Helper()
	prefix := brokertest.Name(t, "route") + "."
	t.Cleanup(func() {
		conn, err := amqp.Dial(brokertest.URL())
		if err != nil {
			return
		}
		defer conn.Close()
		for _, q := range queues {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(prefix+q, false, false, false)
				_ = ch.Close()
			}
		}
	})
	return prefix
}
