package logsvc

import (
	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// exchange is one of the tutorials' log exchanges as warren declares it.
type exchange struct {
	name string
	kind string // amqp.ExchangeFanout, ExchangeDirect or ExchangeTopic
}

// exchange maps the proto's enum to the configured exchange.
// LOG_EXCHANGE_UNSPECIFIED is the fanout exchange, as the proto says. An
// unknown value is INVALID_ARGUMENT.
func (c Config) exchange(e warrenv1.LogExchange) (exchange, error) {
	switch e {
	case warrenv1.LogExchange_LOG_EXCHANGE_UNSPECIFIED, warrenv1.LogExchange_LOG_EXCHANGE_FANOUT:
		return exchange{c.FanoutExchange, "fanout"}, nil
	case warrenv1.LogExchange_LOG_EXCHANGE_DIRECT:
		return exchange{c.DirectExchange, "direct"}, nil
	case warrenv1.LogExchange_LOG_EXCHANGE_TOPIC:
		return exchange{c.TopicExchange, "topic"}, nil
	}
	return exchange{}, core.Argumentf("unknown exchange %d", e)
}

// exchanges lists the exchanges a Service declares.
func (c Config) exchanges() []exchange {
	return []exchange{
		{c.FanoutExchange, "fanout"},
		{c.DirectExchange, "direct"},
		{c.TopicExchange, "topic"},
	}
}

// bindingKeys checks a subscription's binding keys and returns the keys to
// bind the queue with (core.BindingKeys).
func (c Config) bindingKeys(ex exchange, keys []string) ([]string, error) {
	return core.BindingKeys(ex.kind, keys, c.MaxBindingKeys)
}
