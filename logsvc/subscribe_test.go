package logsvc

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestTopicTable is the Topics tutorial's table, exactly. A final message
// both queues match proves, by the order of delivery, that nothing else
// arrived.
func TestTopicTable(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	q1 := h.subscribe(t, topic, "*.orange.*")
	q2 := h.subscribe(t, topic, "*.*.rabbit", "lazy.#")
	for _, key := range []string{
		"quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox",
		"lazy.brown.fox", "orange", "quick.orange.new.rabbit", "end.orange.rabbit",
	} {
		h.emit(t, topic, key, "m")
	}
	tests := []struct {
		name string
		sub  *sub
		want []string
	}{
		{"Q1 *.orange.*", q1, []string{"quick.orange.rabbit:m", "lazy.orange.elephant:m", "quick.orange.fox:m", "end.orange.rabbit:m"}},
		{"Q2 *.*.rabbit lazy.#", q2, []string{"quick.orange.rabbit:m", "lazy.orange.elephant:m", "lazy.brown.fox:m", "end.orange.rabbit:m"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := keys(tc.sub.recvN(t, len(tc.want), 10*time.Second))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFanout: every subscriber gets every message, whatever its routing
// key, with the key, body and a timestamp.
func TestFanout(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	subs := []*sub{h.subscribe(t, fanout), h.subscribe(t, fanout), h.subscribe(t, fanout, "ignored")}
	before := time.Now().Add(-time.Second)
	want := []string{":info: Hello World!", "anything:two", "kern.critical:three"}
	for _, w := range want {
		key, body, _ := strings.Cut(w, ":")
		h.emit(t, fanout, key, body)
	}
	for i, s := range subs {
		ms := s.recvN(t, len(want), 10*time.Second)
		if got := keys(ms); !slices.Equal(got, want) {
			t.Errorf("subscriber %d: got %q, want %q", i, got, want)
		}
		if ts := ms[0].GetTime().AsTime(); ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
			t.Errorf("subscriber %d: time %v, want about now", i, ts)
		}
	}
}

// TestDirectMultipleBindings: two queues bound with the same key both
// receive; a queue with two bindings gets both severities.
func TestDirectMultipleBindings(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	a := h.subscribe(t, direct, "warning", "error")
	b := h.subscribe(t, direct, "error")
	c := h.subscribe(t, direct, "info")
	for _, m := range [][2]string{{"info", "i1"}, {"warning", "w1"}, {"error", "e1"}, {"debug", "d1"}, {"error", "end"}, {"info", "end"}} {
		h.emit(t, direct, m[0], m[1])
	}
	tests := []struct {
		name string
		sub  *sub
		want []string
	}{
		{"warning+error", a, []string{"warning:w1", "error:e1", "error:end"}},
		{"error", b, []string{"error:e1", "error:end"}},
		{"info", c, []string{"info:i1", "info:end"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := keys(tc.sub.recvN(t, len(tc.want), 10*time.Second))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSubscribeInvalid: bad keys and exchanges fail with INVALID_ARGUMENT
// before anything is declared; good topic keys are accepted.
func TestSubscribeInvalid(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	long := strings.Repeat("a", 256)
	tests := []struct {
		name string
		ex   warrenv1.LogExchange
		keys []string
		want codes.Code
	}{
		{"topic star inside word", topic, []string{"kern.crit*"}, codes.InvalidArgument},
		{"topic hash inside word", topic, []string{"#kern"}, codes.InvalidArgument},
		{"topic double hash", topic, []string{"lazy.##"}, codes.InvalidArgument},
		{"topic one bad of two", topic, []string{"lazy.#", "a*.b"}, codes.InvalidArgument},
		{"topic 256 bytes", topic, []string{long}, codes.InvalidArgument},
		{"direct 256 bytes", direct, []string{long}, codes.InvalidArgument},
		{"direct no keys", direct, nil, codes.InvalidArgument},
		{"topic no keys", topic, nil, codes.InvalidArgument},
		{"too many keys", direct, slices.Repeat([]string{"k"}, 65), codes.InvalidArgument},
		{"unknown exchange", warrenv1.LogExchange(99), nil, codes.InvalidArgument},
		{"topic 255 bytes", topic, []string{strings.Repeat("a", 255)}, codes.OK},
		{"topic hash alone", topic, []string{"#"}, codes.OK},
		{"topic stars and empty word", topic, []string{"*.*", "a..#"}, codes.OK},
		{"direct star is literal", direct, []string{"*"}, codes.OK},
		{"unspecified is fanout", warrenv1.LogExchange_LOG_EXCHANGE_UNSPECIFIED, nil, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := h.trySubscribe(tc.ex, tc.keys...)
			if err == nil {
				s.cancel()
			}
			warrentest.WantCode(t, err, tc.want)
		})
	}
}

// TestCancelUnbinds: subscriptions to one exchange share the gateway's
// queue for it; a key is bound while a subscription holds it and unbound
// when its last subscription ends.
func TestCancelUnbinds(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	a := h.subscribe(t, direct, "info", "error")
	b := h.subscribe(t, direct, "info")
	if a.queue != b.queue {
		t.Fatalf("queues %q and %q: want one shared queue", a.queue, b.queue)
	}
	want := func(keys ...string) {
		t.Helper()
		waitBindings(t, h.cfg.DirectExchange, a.queue, keys)
	}
	want("error", "info")
	a.cancel()
	want("info")
	b.cancel()
	want()
}

// waitBindings waits up to 5s until the broker binds exchange to queue
// with exactly keys (sorted), and to no other queue.
func waitBindings(t testing.TB, exchange, queue string, keys []string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = got[:0]
		other := ""
		for _, b := range brokertest.Bindings(t, exchange) {
			if b.Queue != queue {
				other = b.Queue
			}
			got = append(got, b.Key)
		}
		slices.Sort(got)
		if other == "" && slices.Equal(got, keys) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bindings of %q: got keys %q (another queue: %q), want %q to %q only", exchange, got, other, keys, queue)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSubscribeCancelCycles: 100 subscribe/cancel cycles on the three
// exchanges use one queue per exchange, leave no binding behind, and the
// gateway's connection holds its publishing channel and two channels per
// exchange (consumer and bindings), so no channel leaked.
func TestSubscribeCancelCycles(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	queues := map[warrenv1.LogExchange]string{}
	for i := range 100 {
		ex, k := []warrenv1.LogExchange{fanout, direct, topic}[i%3], fmt.Sprint("k", i)
		s := h.subscribe(t, ex, k)
		if q, ok := queues[ex]; ok && q != s.queue {
			t.Fatalf("cycle %d: queue %q, want the exchange's queue %q", i, s.queue, q)
		}
		queues[ex] = s.queue
		s.cancel()
	}
	waitBindings(t, h.cfg.FanoutExchange, queues[fanout], nil)
	waitBindings(t, h.cfg.DirectExchange, queues[direct], nil)
	waitBindings(t, h.cfg.TopicExchange, queues[topic], nil)
	channels, ok := brokerChannels(t, h.connName)
	if !ok {
		t.Fatal("cannot count the gateway's channels (rabbitmqctl)")
	}
	t.Logf("after 100 cycles: 3 queues, no binding, gateway connection has %d channel(s) on the broker", channels)
	if channels != 7 {
		t.Errorf("gateway connection has %d channels on the broker, want 7 (publishing, and per exchange its consumer's and its bindings')", channels)
	}
}

// TestSlowSubscriber: a client that stops reading gets a backlog of
// MaxLength in the gateway; then its subscription ends with
// RESOURCE_EXHAUSTED. What it did receive is in order without gaps.
// Meanwhile the emitter and a fast subscriber on the same exchange and
// key, fed by the same delivery, go at full speed and lose nothing.
func TestSlowSubscriber(t *testing.T) {
	t.Parallel()
	const n, chunk = 1500, 100
	h, slow, fast := startSlowAndFast(t, Config{Prefetch: 8, MaxLength: 500})
	h.emitPast(t, fast, n, chunk)

	st, got := slow.recvEnd(t, 10*time.Second)
	t.Logf("slow subscriber: %d messages, then %v %q", len(got), st.Code(), st.Message())
	if st.Code() != codes.ResourceExhausted || st.Message() != core.ErrOverflow.Error() {
		t.Errorf("slow subscriber ended with %v %q, want RESOURCE_EXHAUSTED %q", st.Code(), st.Message(), core.ErrOverflow)
	}
	if len(got) == 0 || len(got) >= n {
		t.Errorf("slow subscriber got %d messages, want some and fewer than %d", len(got), n)
	}
	for i, m := range got {
		if !strings.HasPrefix(m.GetBody(), fmt.Sprint(i, "x")) {
			t.Fatalf("slow subscriber message %d: body %.10q, want %d… (in order, no gaps)", i, m.GetBody(), i)
		}
	}
	// The fast one's key is still bound, the slow one's end did not take it.
	waitBindings(t, h.cfg.DirectExchange, fast.queue, []string{"k"})
}

// TestShutdownEndsStreams: when the gateway shuts down, every stream ends
// with UNAVAILABLE "gateway: shutting down" and the gateway's queues are
// gone from the broker by the time shutdown returned (they are exclusive
// to its connection).
func TestShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	subs := []*sub{h.subscribe(t, fanout), h.subscribe(t, topic, "#")}
	h.gw.Stop()
	var queues []string
	for i, s := range subs {
		st, _ := s.recvEnd(t, 5*time.Second)
		if st.Code() != codes.Unavailable || st.Message() != gateway.ErrShutdown.Error() {
			t.Errorf("stream %d ended with %v %q, want UNAVAILABLE %q", i, st.Code(), st.Message(), gateway.ErrShutdown)
		}
		queues = append(queues, s.queue)
	}
	conn := brokertest.Dial(t)
	for _, q := range queues {
		if queueExists(t, conn, q) {
			t.Errorf("queue %q still on the broker after shutdown", q)
		}
	}
}

// TestBrokerConnectionLoss: when the broker closes the gateway's
// connection, streams end with UNAVAILABLE; the gateway reconnects and
// new subscriptions and emits work.
func TestBrokerConnectionLoss(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	s := h.subscribe(t, fanout)
	warrentest.CloseConnections(t, h.connName)
	st, _ := s.recvEnd(t, 10*time.Second)
	if st.Code() != codes.Unavailable || st.Message() != core.ErrConnectionLost.Error() {
		t.Errorf("stream ended with %v %q, want UNAVAILABLE %q", st.Code(), st.Message(), core.ErrConnectionLost)
	}

	// The gateway reconnects; the service works again.
	var s2 *sub
	warrentest.Eventually(t, 10*time.Second, "SubscribeLogs after reconnection", func() bool {
		var err error
		s2, err = h.trySubscribe(fanout)
		return err == nil
	})
	t.Cleanup(s2.cancel)
	h.emit(t, fanout, "", "after reconnection")
	if got := keys(s2.recvN(t, 1, 10*time.Second)); got[0] != ":after reconnection" {
		t.Errorf("after reconnection got %q", got)
	}
}
