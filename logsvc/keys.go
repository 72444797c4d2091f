package logsvc

import (
	"strings"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// maxKeyLen is AMQP's limit on a routing or binding key (a shortstr).
const maxKeyLen = 255

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

// checkRoutingKey checks a routing key of a publishing. A key over 255
// bytes must never reach amqp091-go: it fails to encode the frame and
// closes the whole connection. A bad key is INVALID_ARGUMENT.
func checkRoutingKey(key string) error {
	if len(key) > maxKeyLen {
		return core.Argumentf("routing key is %d bytes, more than %d", len(key), maxKeyLen)
	}
	return nil
}

// checkTopicBindingKey checks a topic exchange binding key: words separated
// by dots, where * (exactly one word) and # (zero or more words) may only
// stand as whole words. Empty words are allowed, as the broker allows them.
func checkTopicBindingKey(key string) error {
	if len(key) > maxKeyLen {
		return core.Argumentf("binding key is %d bytes, more than %d", len(key), maxKeyLen)
	}
	for i, w := range strings.Split(key, ".") {
		if w != "*" && w != "#" && strings.ContainsAny(w, "*#") {
			return core.Argumentf("binding key %q: word %d %q mixes * or # with other characters (they must stand as whole words)", key, i+1, w)
		}
	}
	return nil
}

// bindingKeys checks a subscription's binding keys and returns the keys to
// bind the queue with: one empty key for fanout, the keys otherwise. Bad
// keys are INVALID_ARGUMENT.
func (c Config) bindingKeys(ex exchange, keys []string) ([]string, error) {
	if ex.kind == "fanout" {
		return []string{""}, nil
	}
	if len(keys) == 0 {
		return nil, core.Argumentf("the %s exchange needs at least one binding key", ex.kind)
	}
	if len(keys) > c.MaxBindingKeys {
		return nil, core.Argumentf("%d binding keys, more than %d", len(keys), c.MaxBindingKeys)
	}
	for _, k := range keys {
		var err error
		if ex.kind == "topic" {
			err = checkTopicBindingKey(k)
		} else if len(k) > maxKeyLen {
			err = core.Argumentf("binding key is %d bytes, more than %d", len(k), maxKeyLen)
		}
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}
