package brokertest

import (
	"net"
	"strconv"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/faultproxy"
)

// Proxy starts a fault proxy in front of the test broker and returns it
// with the AMQP URL that goes through it. It is closed at cleanup.
func Proxy(t testing.TB) (*faultproxy.Proxy, string) {
	t.Helper()
	u, err := amqp.ParseURI(Require(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	if err != nil {
		t.Fatalf("start fault proxy: %v", err)
	}
	t.Cleanup(p.Close)
	host, port, _ := net.SplitHostPort(p.Addr())
	u.Host = host
	u.Port, _ = strconv.Atoi(port)
	return p, u.String()
}
