package core

import "strings"

// MaxKeyLen is AMQP's limit on a routing or binding key (a shortstr).
const MaxKeyLen = 255

// CheckRoutingKey checks the routing key of a publishing. A key over
// MaxKeyLen must never reach amqp091-go: it fails to encode the frame and
// closes the whole connection. A bad key is an Argumentf error.
func CheckRoutingKey(key string) error {
	if len(key) > MaxKeyLen {
		return Argumentf("routing key is %d bytes, more than %d", len(key), MaxKeyLen)
	}
	return nil
}

// CheckBindingKey checks a binding key for an exchange of kind: at most
// MaxKeyLen bytes, and for a topic exchange words separated by dots where
// * (exactly one word) and # (zero or more words) stand only as whole
// words. Empty words are allowed, as the broker allows them. A bad key is
// an Argumentf error.
func CheckBindingKey(kind, key string) error {
	if len(key) > MaxKeyLen {
		return Argumentf("binding key is %d bytes, more than %d", len(key), MaxKeyLen)
	}
	if kind != "topic" {
		return nil
	}
	for i, w := range strings.Split(key, ".") {
		if w != "*" && w != "#" && strings.ContainsAny(w, "*#") {
			return Argumentf("binding key %q: word %d %q mixes * or # with other characters (they must stand as whole words)", key, i+1, w)
		}
	}
	return nil
}

// BindingKeys checks a subscription's binding keys for an exchange of
// kind and returns the keys to bind its queue with: one empty key for a
// fanout exchange (keys do not matter there), else keys, at least one and
// at most max. Bad keys are Argumentf errors.
func BindingKeys(kind string, keys []string, max int) ([]string, error) {
	if kind == "fanout" {
		return []string{""}, nil
	}
	if len(keys) == 0 {
		return nil, Argumentf("the %s exchange needs at least one binding key", kind)
	}
	if len(keys) > max {
		return nil, Argumentf("%d binding keys, more than %d", len(keys), max)
	}
	for _, k := range keys {
		if err := CheckBindingKey(kind, k); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
