package logsvc

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
)

// exchanges is the Component that owns the log exchanges: it declares them
// on every connection, and again when someone deleted one while the
// connection was up.
//
// A publishing to a deleted exchange makes the broker close the publishing
// channel (404 NOT_FOUND); the core's pool opens a new channel on the next
// publish, but the exchange stays gone until it is declared again. repair
// does that, once per deletion however many callers noticed it.
type exchanges struct {
	list    []exchange
	inspect *core.Inspector // asks whether an exchange still exists
	log     *slog.Logger
	rebind  func(exchange string) error // binds the subscriptions' keys again; may be nil

	mu   sync.Mutex // serialises repairs; guards conn
	conn *core.Conn // nil between connections
	gen  atomic.Uint64
}

// Connected declares the exchanges (core.Component).
func (e *exchanges) Connected(_ context.Context, conn *core.Conn) error {
	if err := declareExchanges(conn.Connection, e.list, e.log); err != nil {
		return err
	}
	e.mu.Lock()
	e.conn = conn
	e.mu.Unlock()
	return nil
}

// Disconnected implements core.Component.
func (e *exchanges) Disconnected(error) {
	e.mu.Lock()
	e.conn = nil
	e.mu.Unlock()
}

// generation counts the repairs; a caller reads it before it publishes and
// hands it to repair if the publishing failed.
func (e *exchanges) generation() uint64 { return e.gen.Load() }

// repair is called after a publishing to ex, or a subscription bound to
// it, failed in a way a deleted exchange explains: its channel closed
// under it while the connection stayed up (ErrConnectionLost; the core
// does not say why), or the broker answered 404 NOT_FOUND. If ex is gone
// from the broker, repair declares every exchange again. It reports
// whether the caller should try once more: ex was declared again, by this
// call or by another since the caller read since from generation.
func (e *exchanges) repair(ex exchange, since uint64, err error) bool {
	var aerr *amqp.Error
	if !errors.Is(err, core.ErrConnectionLost) && !(errors.As(err, &aerr) && aerr.Code == amqp.NotFound) {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen.Load() != since {
		return true
	}
	conn := e.conn
	if conn == nil || conn.IsClosed() {
		return false // the connection is gone: nothing to repair
	}
	perr := e.inspect.Exchange(context.Background(), ex.name, ex.kind)
	if perr == nil {
		return false // it exists: the channel closed for another reason
	}
	if !core.IsNotFound(perr) {
		return false
	}
	if derr := declareExchanges(conn.Connection, e.list, e.log); derr != nil {
		e.log.Warn("logsvc: exchange deleted; declaring it again failed", "exchange", ex.name, "err", derr)
		return false
	}
	e.gen.Add(1)
	e.log.Warn("logsvc: exchange was deleted; declared it again", "exchange", ex.name)
	if e.rebind != nil {
		if err := e.rebind(ex.name); err != nil {
			e.log.Warn("logsvc: exchange declared again; binding its subscriptions' keys again failed", "exchange", ex.name, "err", err)
		}
	}
	return true
}

// declareExchanges declares each exchange as the tutorials do:
// exchange_declare(exchange=name, exchange_type=kind), that is
// non-durable, not auto-deleted, not internal. One that already exists
// with other properties (the broker answers 406 PRECONDITION_FAILED) is
// used as it is, with a warning (core.DeclareExchange).
func declareExchanges(conn *amqp.Connection, exs []exchange, log *slog.Logger) error {
	for _, ex := range exs {
		if err := core.DeclareExchange(conn, core.ExchangeSpec{Name: ex.name, Kind: ex.kind}, log); err != nil {
			return err
		}
	}
	return nil
}
