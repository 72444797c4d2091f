package logsvc

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every goroutine a test starts (gateway, supervisor, gRPC server and
	// clients, subscription pumps, amqp091-go's readers) must be gone when
	// the tests end; nothing is ignored.
	goleak.VerifyTestMain(m)
}
