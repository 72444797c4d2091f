package logsvc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestExchangesDeclaredAsTheTutorials: the three exchanges exist once the
// gateway is connected, with the tutorials' types and properties (a
// passive declare does not check those, so each is declared again as the
// tutorial does: the broker would answer 406 to any difference).
func TestExchangesDeclaredAsTheTutorials(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	ch := brokertest.Channel(t)
	for _, ex := range h.cfg.exchanges() {
		if err := ch.ExchangeDeclare(ex.name, ex.kind, false, false, false, false, nil); err != nil {
			t.Fatalf("exchange_declare(%q, %q) as the tutorial: %v", ex.name, ex.kind, err)
		}
	}
}

// TestExchangeWithOtherProperties: an exchange that exists with other
// properties (here durable, and of another type) is used as it is, with
// a warning, instead of keeping the gateway from connecting.
func TestExchangeWithOtherProperties(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	cfg := testConfig(t, Config{Logger: logs.logger()})
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDeclare(cfg.FanoutExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg)
	if !strings.Contains(logs.String(), "exchange exists with other properties") || !strings.Contains(logs.String(), cfg.FanoutExchange) {
		t.Errorf("log: got %q, want a warning about %q", logs.String(), cfg.FanoutExchange)
	}
	// The fanout request goes to the direct exchange as it is: a binding
	// with an empty key gets a message with an empty routing key.
	s := h.subscribe(t, fanout)
	h.emit(t, fanout, "", "as it is")
	if got := keys(s.recvN(t, 1, 10*time.Second)); got[0] != ":as it is" {
		t.Errorf("got %q, want %q", got, ":as it is")
	}
}

// TestDeletedExchangeDeclaredAgain: someone deletes an exchange while the
// gateway runs. The next EmitLog, whose publishing the broker refuses
// with 404 (closing the publishing channel), declares the exchanges
// again and publishes once more: it succeeds, and a subscriber bound
// after that gets the message. A subscription to a deleted exchange
// likewise declares it again and succeeds.
func TestDeletedExchangeDeclaredAgain(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	h := start(t, Config{Logger: logs.logger()})
	ch := brokertest.Channel(t)
	deleted := func(name string) {
		t.Helper()
		if err := ch.ExchangeDelete(name, false, false); err != nil {
			t.Fatalf("delete exchange %q: %v", name, err)
		}
		if err := ch.ExchangeDeclarePassive(name, "", false, false, false, false, nil); err == nil {
			t.Fatalf("exchange %q still exists", name)
		}
		ch = brokertest.Channel(t) // the 404 closed it
	}

	deleted(h.cfg.DirectExchange)
	h.emit(t, direct, "error", "after the deletion")
	s := h.subscribe(t, direct, "error")
	h.emit(t, direct, "error", "bound")
	if got := keys(s.recvN(t, 1, 10*time.Second)); got[0] != "error:bound" {
		t.Errorf("got %q, want error:bound", got)
	}

	deleted(h.cfg.TopicExchange)
	s = h.subscribe(t, topic, "kern.*")
	h.emit(t, topic, "kern.info", "bound")
	if got := keys(s.recvN(t, 1, 10*time.Second)); got[0] != "kern.info:bound" {
		t.Errorf("got %q, want kern.info:bound", got)
	}
	if n := strings.Count(logs.String(), "exchange was deleted; declared it again"); n != 2 {
		t.Errorf("log: got %d warnings about a deleted exchange, want 2: %q", n, logs.String())
	}
}

// TestRepairLeavesOtherErrors: repair acts only on what a deleted
// exchange explains, and only while there is a connection.
func TestRepairLeavesOtherErrors(t *testing.T) {
	t.Parallel()
	e := &exchanges{list: Config{}.withDefaults().exchanges(), log: warrentest.QuietLog}
	for _, err := range []error{
		errors.New("other"),
		context.DeadlineExceeded,
		&amqp.Error{Code: amqp.AccessRefused},
		&amqp.Error{Code: amqp.NotFound}, // no connection
	} {
		if e.repair(e.list[0], e.generation(), err) {
			t.Errorf("repair after %v: got true, want false", err)
		}
	}
}
