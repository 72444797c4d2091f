package core_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
)

// TestMatchKeyAgainstTheBroker is a property test: core.MatchKey and the
// broker agree on every (binding key, routing key) pair of random keys.
// Each round binds one queue per binding key to an exchange of the test's
// own, publishes every routing key once with publisher confirms, and
// reads which queue got which; the broker is right by definition.
//
// Keys are words from a small alphabet, so that they match often: empty
// words, * and # (as words of binding keys, and as plain characters in
// routing keys, where they mean nothing special), and some keys as long as
// AMQP allows (255 bytes).
func TestMatchKeyAgainstTheBroker(t *testing.T) {
	t.Parallel()
	conn := brokertest.Dial(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	// Binding keys hold at most two # each, and the long ones (up to 255
	// bytes, 100 words and more) none: the broker's trie walks every way a
	// # can take words, so many # or long keys with # cost it time that
	// grows as a power of the words (this broker is shared), while two
	// already cover # next to #, to *, and to the empty word.
	bind := func(words []string, max int) func(*rand.Rand) string {
		return func(r *rand.Rand) string { return limitHash(randomKey(r, words, max), 2) }
	}
	route := func(words []string, max int) func(*rand.Rand) string {
		return func(r *rand.Rand) string { return randomKey(r, words, max) }
	}
	rounds := []struct {
		kind           string
		bindings, keys int
		binding, key   func(*rand.Rand) string
		derive         bool // routing keys made from the binding keys, to match long ones at all
	}{
		{"topic", 1000, 100, bind([]string{"", "a", "b", "*", "#"}, 6), route([]string{"", "a", "b"}, 7), false},
		{"topic", 400, 100, bind([]string{"a", "*", "#", "", "ab"}, 9), route([]string{"a", "ab", "", "*", "#"}, 10), false},
		{"topic", 100, 40, func(r *rand.Rand) string { return limitHash(longKey(r, []string{"a", "*", ""}), 0) }, nil, true},
		{"direct", 200, 50, route([]string{"", "a", "*", "#"}, 2), route([]string{"", "a", "*", "#"}, 2), false},
	}
	pairs, mismatches := 0, 0
	for i, round := range rounds {
		bindings := make([]string, round.bindings)
		for j := range bindings {
			bindings[j] = round.binding(rng)
		}
		keys := make([]string, round.keys)
		for j := range keys {
			if round.derive {
				keys[j] = instance(rng, bindings[rng.IntN(len(bindings))])
			} else {
				keys[j] = round.key(rng)
			}
		}
		got := brokerMatches(t, conn, brokertest.Name(t, "match"+strconv.Itoa(i)), round.kind, bindings, keys)
		for b, binding := range bindings {
			for k, key := range keys {
				pairs++
				if want := got[b][k]; core.MatchKey(round.kind, binding, key) != want {
					mismatches++
					if mismatches <= 20 {
						t.Errorf("%s: MatchKey(binding %q, routing key %q) = %v, the broker says %v", round.kind, binding, key, !want, want)
					}
				}
			}
		}
	}
	t.Logf("core.MatchKey against the broker: %d (binding key, routing key) pairs, %d mismatches", pairs, mismatches)
	if pairs < 100000 {
		t.Errorf("compared %d pairs, want at least 100000", pairs)
	}
}

// randomKey joins up to max words drawn from words (a key of zero words is
// the empty key).
func randomKey(r *rand.Rand, words []string, max int) string {
	n := r.IntN(max + 1)
	w := make([]string, n)
	for i := range w {
		w[i] = words[r.IntN(len(words))]
	}
	return strings.Join(w, ".")
}

// limitHash turns every # of key after the first max into *.
func limitHash(key string, max int) string {
	words := strings.Split(key, ".")
	for i, w := range words {
		if w == "#" {
			if max == 0 {
				words[i] = "*"
			} else {
				max--
			}
		}
	}
	return strings.Join(words, ".")
}

// instance is a routing key the binding key matches (each * a word), or
// half the time one with a word changed, which it may not.
func instance(r *rand.Rand, binding string) string {
	words := strings.Split(binding, ".")
	for i, w := range words {
		if w == "*" {
			words[i] = []string{"a", "", "b"}[r.IntN(3)]
		}
	}
	if r.IntN(2) == 0 {
		words[r.IntN(len(words))] = "b"
	}
	return strings.Join(words, ".")
}

// longKey is a key of 200 to 255 bytes.
func longKey(r *rand.Rand, words []string) string {
	limit := 200 + r.IntN(core.MaxKeyLen-200+1)
	var b strings.Builder
	for {
		w := words[r.IntN(len(words))]
		if b.Len()+1+len(w) > limit {
			return b.String()
		}
		if b.Len() > 0 || r.IntN(2) == 0 {
			b.WriteByte('.')
		}
		b.WriteString(w)
	}
}

// brokerMatches declares an exchange of kind, binds one queue per binding
// key, publishes each routing key once (its index as the body) and returns
// got[binding][key]: whether the broker routed key to that binding's
// queue. The queues are exclusive and go with the test's channel.
func brokerMatches(t *testing.T, conn *amqp.Connection, exchange, kind string, bindings, keys []string) [][]bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ch.Close() }()
	if err := ch.ExchangeDeclare(exchange, kind, false, true, false, false, nil); err != nil {
		t.Fatalf("declare exchange: %v", err)
	}
	t0 := time.Now()
	queues := make([]string, len(bindings))
	for i, b := range bindings {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatalf("declare queue: %v", err)
		}
		if err := ch.QueueBind(q.Name, b, exchange, false, nil); err != nil {
			t.Fatalf("bind with %q: %v", b, err)
		}
		queues[i] = q.Name
	}
	defer func() {
		for _, q := range queues {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
	}()
	t.Logf("%s: %d queues declared and bound in %v", kind, len(queues), time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	confirms := make([]*amqp.DeferredConfirmation, len(keys))
	for i, k := range keys {
		confirms[i], err = ch.PublishWithDeferredConfirmWithContext(ctx, exchange, k, false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatalf("publish %q: %v", k, err)
		}
	}
	for i, c := range confirms {
		if ok, err := c.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("publish %q: not confirmed: %v", keys[i], err)
		}
	}
	t.Logf("%s: %d routing keys published and confirmed in %v", kind, len(keys), time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	// Confirmed: every copy is in its queue. Count them, then read them.
	want := 0
	for _, q := range queues {
		n, err := ch.QueueDeclarePassive(q, false, true, true, false, nil)
		if err != nil {
			t.Fatalf("passive declare: %v", err)
		}
		want += n.Messages
	}
	got := make([][]bool, len(bindings))
	type copyOf struct{ binding, key int }
	arrived := make(chan copyOf, 1024)
	for i, q := range queues {
		got[i] = make([]bool, len(keys))
		ds, err := ch.Consume(q, "", true, true, false, false, nil)
		if err != nil {
			t.Fatalf("consume: %v", err)
		}
		go func() {
			for d := range ds {
				k, _ := strconv.Atoi(string(d.Body))
				arrived <- copyOf{i, k}
			}
		}()
	}
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for n := 0; n < want; n++ {
		select {
		case c := <-arrived:
			if got[c.binding][c.key] {
				t.Fatalf("binding %q got routing key %q twice", bindings[c.binding], keys[c.key])
			}
			got[c.binding][c.key] = true
		case <-timeout.C:
			t.Fatalf("%d of %d routed copies read after a minute", n, want)
		}
	}
	t.Logf("%s: %d routed copies read in %v", kind, want, time.Since(t0).Round(time.Millisecond))
	return got
}
