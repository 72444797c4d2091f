package logsvc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	wt "github.com/warrenrpc/warren/internal/warrentest"
)

// TestBadInputLogService is LogService's part of the bad-input suite
// (moved here from the gateway's): malformed requests at every RPC, as raw
// bytes, each followed by a good EmitLog while the gateway and the service
// must still be SERVING. See warrentest.RunBadCases for what a client
// sees; everything the service checks itself is INVALID_ARGUMENT, and a
// failed EmitLogs says how many messages were confirmed before it.
func TestBadInputLogService(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	const (
		emit  = "/warren.v1.LogService/EmitLog"
		emits = "/warren.v1.LogService/EmitLogs"
		sub   = "/warren.v1.LogService/SubscribeLogs"
	)
	topic := int32(warrenv1.LogExchange_LOG_EXCHANGE_TOPIC)
	direct := int32(warrenv1.LogExchange_LOG_EXCHANGE_DIRECT)
	ex := func(e int32) []byte { return wt.BadVarint(1, uint64(int64(e))) }
	long := strings.Repeat("k", 256)
	subKeys := func(e int32, keys ...string) []byte {
		b := ex(e)
		for _, k := range keys {
			b = append(b, wt.BadString(2, k)...)
		}
		return b
	}
	many := make([]string, 10000)
	for i := range many {
		many[i] = fmt.Sprint("k", i)
	}
	cases := []wt.BadCase{
		{Name: "emit empty request", Method: emit, Msgs: [][]byte{nil}, Want: codes.OK},
		{Name: "emit unknown exchange", Method: emit, Msgs: [][]byte{ex(99)}, Want: codes.InvalidArgument, WantMsg: "unknown exchange 99"},
		{Name: "emit negative exchange", Method: emit, Msgs: [][]byte{ex(-1)}, Want: codes.InvalidArgument},
		{Name: "emit routing key over 255 bytes", Method: emit, Msgs: [][]byte{wt.BadJoin(ex(topic), wt.BadString(2, long))}, Want: codes.InvalidArgument, WantMsg: "routing key is 256 bytes"},
		{Name: "emit routing key invalid UTF-8", Method: emit, Msgs: [][]byte{wt.BadJoin(ex(topic), wt.BadString(2, wt.BadInvalidUTF8))}, Want: codes.Internal},
		{Name: "emit body invalid UTF-8", Method: emit, Msgs: [][]byte{wt.BadString(3, wt.BadInvalidUTF8)}, Want: codes.Internal},
		{Name: "emit over 4 MiB", Method: emit, Msgs: [][]byte{wt.BadString(3, wt.BadHuge())}, Want: codes.ResourceExhausted, WantMsg: "larger than max"},
		{Name: "emit garbage bytes", Method: emit, Msgs: [][]byte{wt.BadGarbage}, Want: codes.Internal, WantMsg: "unmarshal"},
		{Name: "emits no messages", Method: emits, Kind: wt.BadClientStream, Msgs: nil, Want: codes.OK},
		{Name: "emits unknown exchange", Method: emits, Kind: wt.BadClientStream, Msgs: [][]byte{nil, ex(99)}, Want: codes.InvalidArgument, WantMsg: "(1 messages confirmed before this)"},
		{Name: "emits routing key over 255 bytes", Method: emits, Kind: wt.BadClientStream, Msgs: [][]byte{wt.BadJoin(ex(direct), wt.BadString(2, long))}, Want: codes.InvalidArgument, WantMsg: "(0 messages confirmed before this)"},
		{Name: "emits invalid UTF-8 mid-stream", Method: emits, Kind: wt.BadClientStream, Msgs: [][]byte{nil, wt.BadString(3, wt.BadInvalidUTF8), nil}, Want: codes.Internal},
		{Name: "emits message over 4 MiB", Method: emits, Kind: wt.BadClientStream, Msgs: [][]byte{nil, wt.BadString(3, wt.BadHuge())}, Want: codes.ResourceExhausted},
		{Name: "subscribe fanout, no keys", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{nil}, Want: codes.OK},
		{Name: "subscribe direct without keys", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{ex(direct)}, Want: codes.InvalidArgument, WantMsg: "the direct exchange needs at least one binding key"},
		{Name: "subscribe topic key mixing wildcards", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(topic, "kern*")}, Want: codes.InvalidArgument, WantMsg: `word 1 "kern*" mixes * or #`},
		{Name: "subscribe topic key over 255 bytes", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(topic, long)}, Want: codes.InvalidArgument, WantMsg: "binding key is 256 bytes, more than 255"},
		{Name: "subscribe direct key over 255 bytes", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(direct, long)}, Want: codes.InvalidArgument, WantMsg: "binding key is 256 bytes, more than 255"},
		{Name: "subscribe good key then one over 255 bytes", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(topic, "kern.*", long)}, Want: codes.InvalidArgument, WantMsg: "binding key is 256 bytes, more than 255"},
		{Name: "subscribe topic empty key", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(topic, "")}, Want: codes.OK},
		{Name: "subscribe topic key of empty words", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(topic, "a..b", ".", "..#")}, Want: codes.OK},
		{Name: "subscribe direct key of 255 bytes", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(direct, long[1:])}, Want: codes.OK},
		{Name: "subscribe direct empty key", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(direct, "")}, Want: codes.OK},
		{Name: "subscribe the same key twice", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(topic, "a.b", "a.b")}, Want: codes.OK},
		{Name: "subscribe 10,000 keys", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(direct, many...)}, Want: codes.InvalidArgument, WantMsg: "10000 binding keys, more than 64"},
		{Name: "subscribe 10,000 topic keys", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(topic, many...)}, Want: codes.InvalidArgument, WantMsg: "10000 binding keys, more than 64"},
		{Name: "subscribe too many keys", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(direct, many[:65]...)}, Want: codes.InvalidArgument, WantMsg: "65 binding keys, more than 64"},
		{Name: "subscribe unknown exchange", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{ex(99)}, Want: codes.InvalidArgument, WantMsg: "unknown exchange 99"},
		{Name: "subscribe key invalid UTF-8", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(direct, wt.BadInvalidUTF8)}, Want: codes.InvalidArgument, WantMsg: "a binding key is not valid UTF-8"},
		{Name: "subscribe topic good key then one invalid UTF-8", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(topic, "kern.*", "kern."+wt.BadInvalidUTF8)}, Want: codes.InvalidArgument, WantMsg: "a binding key is not valid UTF-8"},
		{Name: "subscribe garbage bytes", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{wt.BadGarbage}, Want: codes.InvalidArgument, WantMsg: "the request cannot be decoded"},
		{Name: "subscribe over 4 MiB", Method: sub, Kind: wt.BadServerStream, Msgs: [][]byte{subKeys(direct, wt.BadHuge())}, Want: codes.ResourceExhausted},
	}
	health := healthpb.NewHealthClient(h.gw.Conn)
	wt.RunBadCases(t, h.gw.Conn, cases, func(ctx context.Context) error {
		// RunBadCases checks the gateway's health; the service's too.
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: h.svc.Name()})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health of %s: %v, %v; want SERVING", h.svc.Name(), resp.GetStatus(), err)
		}
		_, err = h.client.EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: "kern.info", Body: "good"})
		return err
	})
	// What the good cases bound is unbound once they ended (and the
	// keys' linger passed); the bad ones bound nothing.
	waitNoBindings(t, h.cfg.TopicExchange)
	waitNoBindings(t, h.cfg.DirectExchange)
}

// TestBadKeysBindNothing: binding keys the gateway refuses fail with
// INVALID_ARGUMENT naming the problem, before anything reaches the broker:
// no queue is declared and no key is bound, not even a request's good keys
// next to its bad one.
func TestBadKeysBindNothing(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	long := strings.Repeat("k", 256)
	many := make([]string, 10000)
	for i := range many {
		many[i] = fmt.Sprint("k", i)
	}
	tests := []struct {
		name    string
		ex      warrenv1.LogExchange
		keys    []string
		wantMsg string
	}{
		{"topic key over 255 bytes", topic, []string{long}, "binding key is 256 bytes, more than 255"},
		{"direct key over 255 bytes", direct, []string{long}, "binding key is 256 bytes, more than 255"},
		{"good keys then one over 255 bytes", topic, []string{"kern.*", "#", long}, "binding key is 256 bytes, more than 255"},
		{"good key then a wildcard inside a word", topic, []string{"kern.*", "kern.crit*"}, `word 2 "crit*" mixes * or #`},
		{"10,000 topic keys", topic, many, "10000 binding keys, more than 64"},
		{"10,000 direct keys", direct, many, "10000 binding keys, more than 64"},
		{"65 keys", direct, many[:65], "65 binding keys, more than 64"},
		{"topic without keys", topic, nil, "the topic exchange needs at least one binding key"},
		{"direct without keys", direct, nil, "the direct exchange needs at least one binding key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := h.trySubscribe(tc.ex, tc.keys...)
			if err == nil {
				s.cancel()
			}
			wt.WantCode(t, err, codes.InvalidArgument)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("got message %q, want it to name the problem: %q", msg, tc.wantMsg)
			}
		})
	}
	t.Cleanup(func() {
		// After the subtests: nothing declared, nothing bound.
		for _, name := range []string{h.cfg.TopicExchange, h.cfg.DirectExchange} {
			if q := h.svc.mux[name].Queue(); q != "" {
				t.Errorf("the gateway declared queue %q for %q; want none after bad keys only", q, name)
			}
			if keys := bindingKeys(t, name); len(keys) != 0 {
				t.Errorf("%q has bindings %q; want none after bad keys only", name, keys)
			}
		}
	})
}

// waitNoBindings waits up to 5s until exchange has no bindings.
func waitNoBindings(t testing.TB, exchange string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		keys := bindingKeys(t, exchange)
		if len(keys) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q still has bindings %q, want none", exchange, keys)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
