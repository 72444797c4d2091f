// Package brokertest gives integration tests a RabbitMQ broker and names of
// their own.
//
// Tests read the broker URL from AMQP_URL (default: the local broker). When
// the broker is unreachable a test is skipped with a loud message, except
// when CI is set: then it fails, because a skipped integration test proves
// nothing.
package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// URL is the broker the integration tests use.
func URL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// Require returns the broker URL, or stops the test when there is no broker:
// t.Fatal under CI, t.Skip otherwise.
func Require(t testing.TB) string {
	t.Helper()
	u := URL()
	uri, err := amqp.ParseURI(u)
	if err != nil {
		t.Fatalf("AMQP_URL %q: %v", u, err)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(uri.Host, itoa(uri.Port)), 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no RabbitMQ broker at %s under CI: %v (make test starts one)", u, err)
		}
		t.Skipf("SKIPPING integration test: no RabbitMQ broker at %s: %v (run make test, which starts one)", u, err)
	}
	_ = c.Close()
	return u
}

// Dial opens a connection for the test and closes it at cleanup.
func Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(Require(t))
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Channel opens a channel on a new connection of the test's own.
func Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := Dial(t).Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	return ch
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// derived are the suffixes of the queues warren derives from a name: a task
// queue's dead-letter queue (worker.TaskDeadLetterSuffix) and an events
// exchange's watchers queue. Name's cleanup deletes them even when the
// management API cannot list them.
var derived = []string{".dead", ".watchers", ".history"}

// Name returns an entity name unique to this test run, derived from the test
// name and prefix, so tests running in parallel packages never share queues
// or exchanges. At cleanup it deletes the queue or exchange of that name and
// those whose names extend it (name + ".dead", name + ".watchers", ...:
// the entities warren derives from a name): the ones warren derives always,
// any other as far as the management API lists them.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "test." + prefix + "." + unsafeChars.ReplaceAllString(t.Name(), "_") + "." + hex.EncodeToString(b[:])
	if len(name) > 200 {
		name = name[:190] + "." + hex.EncodeToString(b[:])
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(URL())
		if err != nil {
			return
		}
		defer conn.Close()
		queues, exchanges := []string{name}, []string{name}
		for _, s := range derived {
			queues = append(queues, name+s)
		}
		listedQueues, qerr := listNames("queues", name+".")
		listedExchanges, xerr := listNames("exchanges", name+".")
		if err := errors.Join(qerr, xerr); err != nil {
			t.Logf("brokertest: cannot list the other entities named %s.*, which may be left on the broker: %v", name, err)
		}
		queues = append(queues, listedQueues...)
		exchanges = append(exchanges, listedExchanges...)
		slices.Sort(queues)
		slices.Sort(exchanges)
		for _, q := range slices.Compact(queues) {
			// A missing entity may close the channel: one channel each.
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
		}
		for _, ex := range slices.Compact(exchanges) {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(ex, false, false)
				_ = ch.Close()
			}
		}
	})
	return name
}

func itoa(n int) string {
	if n == 0 {
		n = 5672
	}
	return strconv.Itoa(n)
}
