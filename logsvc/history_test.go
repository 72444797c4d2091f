package logsvc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/faultproxy"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// withHistory is a Config with the history on.
func withHistory(h History) Config {
	h.Enabled = true
	return Config{History: h}
}

// subscribeReq opens a subscription with req and waits for its header.
func subscribeReq(t testing.TB, client warrenv1.LogServiceClient, req *warrenv1.SubscribeLogsRequest) (*sub, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.SubscribeLogs(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	md, err := stream.Header()
	if err == nil && len(md.Get(QueueHeader)) == 1 {
		t.Cleanup(cancel)
		return &sub{stream: stream, queue: md.Get(QueueHeader)[0], cancel: cancel}, nil
	}
	_, err = stream.Recv()
	cancel()
	if err == nil {
		err = errors.New("stream ended without a queue header")
	}
	return nil, err
}

// emitNumbered emits bodies from..to-1 as decimal numbers on one EmitLogs
// stream, with the routing key key.
func (h *harness) emitNumbered(t testing.TB, ex warrenv1.LogExchange, key string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := h.client.EmitLogs(ctx)
	if err != nil {
		t.Fatalf("EmitLogs: %v", err)
	}
	for i := from; i < to; i++ {
		if err := s.Send(&warrenv1.EmitLogsRequest{Exchange: ex, RoutingKey: key, Body: strconv.Itoa(i)}); err != nil {
			t.Fatalf("EmitLogs.Send(%d): %v", i, err)
		}
	}
	if _, err := s.CloseAndRecv(); err != nil {
		t.Fatalf("EmitLogs: %v", err)
	}
}

// numbers are the bodies of ms as numbers.
func numbers(t testing.TB, ms []*warrenv1.SubscribeLogsResponse) []int {
	t.Helper()
	out := make([]int, len(ms))
	for i, m := range ms {
		n, err := strconv.Atoi(m.GetBody())
		if err != nil {
			t.Fatalf("message %d: body %q is not a number", i, m.GetBody())
		}
		out[i] = n
	}
	return out
}

// wantRun fails unless got is from, from+1, ..., from+len(got)-1.
func wantRun(t testing.TB, got []int, from int) {
	t.Helper()
	for i, n := range got {
		if n != from+i {
			t.Fatalf("message %d is %d, want %d (got %v...)", i, n, from+i, got[:min(len(got), 20)])
		}
	}
}

// TestHistoryResume is the resume test: 10,000 numbered logs are
// emitted while a subscriber's connection to the gateway is cut twice;
// each time it subscribes again from the last offset it received plus
// one, and it ends with exactly the 10,000 messages, in order.
func TestHistoryResume(t *testing.T) {
	h := startTCP(t, withHistory(History{}))
	proxy, err := faultproxy.Start(h.gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	client := h.dialAddr(t, proxy.Addr())

	const total = 10000
	first, err := subscribeReq(t, client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"resume.#"}})
	if err != nil {
		t.Fatalf("SubscribeLogs: %v", err)
	}
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for i := 0; i < total; i += 500 {
			h.emitNumbered(t, topic, "resume.test", i, i+500)
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var got []int
	var lastOffset int64 = -1
	cuts, resumes := 0, 0
	s := first
	for len(got) < total {
		m, err := s.stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("after %d messages: %v, want UNAVAILABLE from the cut", len(got), err)
			}
			// Cut off: resume after the last offset received.
			resumes++
			req := &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"resume.#"},
				Start: &warrenv1.SubscribeLogsRequest_StartOffset{StartOffset: lastOffset + 1}}
			deadline := time.Now().Add(10 * time.Second)
			var took time.Duration
			for {
				t0 := time.Now()
				s, err = subscribeReq(t, client, req)
				took = time.Since(t0)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("resume from offset %d: %v", lastOffset+1, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("cut %d after %d messages (offset %d): resumed from offset %d (subscribed in %v)", cuts, len(got), lastOffset, lastOffset+1, took.Round(time.Millisecond))
			continue
		}
		if m.Offset == nil {
			t.Fatalf("message %q has no offset", m.GetBody())
		}
		if *m.Offset <= lastOffset {
			t.Fatalf("offset %d after %d: not increasing", *m.Offset, lastOffset)
		}
		lastOffset = *m.Offset
		n, _ := strconv.Atoi(m.GetBody())
		got = append(got, n)
		if (len(got) == 3000 || len(got) == 7000) && cuts < 2 {
			cuts++
			proxy.Drop()
		}
	}
	<-emitted
	if cuts != 2 || resumes != 2 {
		t.Fatalf("%d cuts and %d resumes, want 2 and 2", cuts, resumes)
	}
	wantRun(t, got, 0)
	distinct := map[int]bool{}
	for _, n := range got {
		distinct[n] = true
	}
	t.Logf("received %d messages, %d distinct, in order, across %d cuts", len(got), len(distinct), cuts)
	if len(distinct) != total {
		t.Fatalf("%d distinct messages, want %d", len(distinct), total)
	}
	// And nothing more: the emitter is done.
	if _, more := recvWithin(s, 200*time.Millisecond); more {
		t.Fatal("a message after the 10,000th")
	}
}

// recvWithin receives one message if it comes within d.
func recvWithin(s *sub, d time.Duration) (*warrenv1.SubscribeLogsResponse, bool) {
	type result struct {
		m   *warrenv1.SubscribeLogsResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := s.stream.Recv()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err == nil
	case <-time.After(d):
		s.cancel()
		return nil, false
	}
}

// TestHistoryStartingPoints: first, last, an offset and a time, on each
// kind of exchange, each followed by the live messages; and the live
// subscription without a start carries offsets too.
func TestHistoryStartingPoints(t *testing.T) {
	h := start(t, withHistory(History{}))
	for _, tc := range []struct {
		ex  warrenv1.LogExchange
		key string
	}{{fanout, ""}, {direct, "info"}, {topic, "app.info"}} {
		t.Run(tc.ex.String(), func(t *testing.T) {
			bind := []string{tc.key}
			if tc.ex == fanout {
				bind = nil
			}
			live := h.subscribe(t, tc.ex, bind...)
			before := time.Now().Add(-2 * time.Second)
			h.emitNumbered(t, tc.ex, tc.key, 0, 20)
			ms := live.recvN(t, 20, 10*time.Second)
			wantRun(t, numbers(t, ms), 0)
			offsets := make([]int64, len(ms))
			for i, m := range ms {
				if m.Offset == nil {
					t.Fatalf("live message %d has no offset", i)
				}
				offsets[i] = *m.Offset
			}

			from := func(start any) *sub {
				t.Helper()
				req := &warrenv1.SubscribeLogsRequest{Exchange: tc.ex, BindingKeys: bind}
				switch v := start.(type) {
				case warrenv1.HistoryStart:
					req.Start = &warrenv1.SubscribeLogsRequest_StartAt{StartAt: v}
				case int64:
					req.Start = &warrenv1.SubscribeLogsRequest_StartOffset{StartOffset: v}
				case time.Time:
					req.Start = &warrenv1.SubscribeLogsRequest_StartTime{StartTime: timestamppb.New(v)}
				}
				s, err := subscribeReq(t, h.client, req)
				if err != nil {
					t.Fatalf("SubscribeLogs from %v: %v", start, err)
				}
				return s
			}
			firstSub := from(warrenv1.HistoryStart_HISTORY_START_FIRST)
			lastSub := from(warrenv1.HistoryStart_HISTORY_START_LAST)
			offSub := from(offsets[12])
			timeSub := from(before)

			wantRun(t, numbers(t, firstSub.recvN(t, 20, 10*time.Second)), 0)
			wantRun(t, numbers(t, lastSub.recvN(t, 1, 10*time.Second)), 19)
			got := offSub.recvN(t, 8, 10*time.Second)
			wantRun(t, numbers(t, got), 12)
			if *got[0].Offset != offsets[12] {
				t.Fatalf("from offset %d: first offset %d", offsets[12], *got[0].Offset)
			}
			wantRun(t, numbers(t, timeSub.recvN(t, 20, 10*time.Second)), 0)

			// Then the live messages, on every one of them.
			h.emitNumbered(t, tc.ex, tc.key, 20, 25)
			for name, s := range map[string]*sub{"live": live, "first": firstSub, "last": lastSub, "offset": offSub, "time": timeSub} {
				if got := numbers(t, s.recvN(t, 5, 10*time.Second)); got[0] != 20 {
					t.Fatalf("%s: after the history, %v, want 20...24", name, got)
				} else {
					wantRun(t, got, 20)
				}
			}
		})
	}
}

// TestHistoryKeepsForeignEmits: the stream is bound to the exchange, so a
// message published there by any AMQP client (here amqp091-go, as the
// tutorials' emit_log would) is in the history, and only the keys of the
// subscription are replayed.
func TestHistoryKeepsForeignEmits(t *testing.T) {
	h := start(t, withHistory(History{}))
	ch := brokertest.Channel(t)
	for i, key := range []string{"kern.info", "app.error", "kern.error"} {
		if err := ch.PublishWithContext(context.Background(), h.cfg.TopicExchange, key, false, false,
			amqp.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := subscribeReq(t, h.client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"kern.*"},
		Start: &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_FIRST}})
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(s.recvN(t, 2, 10*time.Second)); fmt.Sprint(got) != "[kern.info:0 kern.error:2]" {
		t.Fatalf("replayed %v, want [kern.info:0 kern.error:2]", got)
	}
}

// TestHistoryBadStarts: every starting point that cannot be honoured ends
// the call with a status that says why, before anything streams, and the
// gateway goes on serving.
func TestHistoryBadStarts(t *testing.T) {
	off := start(t, Config{})
	h := start(t, withHistory(History{}))
	h.emitNumbered(t, topic, "a.b", 0, 10)
	s, err := subscribeReq(t, h.client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"#"},
		Start: &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_LAST}})
	if err != nil {
		t.Fatal(err)
	}
	last := *s.recvN(t, 1, 10*time.Second)[0].Offset
	s.cancel()

	offset := func(n int64) *warrenv1.SubscribeLogsRequest_StartOffset {
		return &warrenv1.SubscribeLogsRequest_StartOffset{StartOffset: n}
	}
	at := func(t time.Time) *warrenv1.SubscribeLogsRequest_StartTime {
		return &warrenv1.SubscribeLogsRequest_StartTime{StartTime: timestamppb.New(t)}
	}
	for _, tc := range []struct {
		name   string
		client warrenv1.LogServiceClient
		ex     warrenv1.LogExchange
		start  any
		want   codes.Code
		msg    string
	}{
		{"history off", off.client, topic, offset(0), codes.FailedPrecondition, "--log-history"},
		{"history off, first", off.client, topic, &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_FIRST}, codes.FailedPrecondition, "no history is kept for this exchange"},
		{"negative offset", h.client, topic, offset(-1), codes.InvalidArgument, "negative"},
		{"offset past the end", h.client, topic, offset(last + 2), codes.OutOfRange, "past the end"},
		{"offset far in the future", h.client, topic, offset(1 << 62), codes.OutOfRange, "past the end"},
		{"offset on an empty history", h.client, fanout, offset(5), codes.OutOfRange, "holds no message yet"},
		{"start_at unset", h.client, topic, &warrenv1.SubscribeLogsRequest_StartAt{}, codes.InvalidArgument, "HISTORY_START_FIRST"},
		{"time before 1970", h.client, topic, at(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)), codes.OutOfRange, "before 1970"},
		{"time in the future", h.client, topic, at(time.Now().Add(time.Hour)), codes.OutOfRange, "in the future"},
		{"time out of range", h.client, topic, &warrenv1.SubscribeLogsRequest_StartTime{StartTime: &timestamppb.Timestamp{Seconds: -1 << 62}}, codes.InvalidArgument, "start_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &warrenv1.SubscribeLogsRequest{Exchange: tc.ex, BindingKeys: []string{"#"}}
			if tc.ex == fanout {
				req.BindingKeys = nil
			}
			switch v := tc.start.(type) {
			case *warrenv1.SubscribeLogsRequest_StartOffset:
				req.Start = v
			case *warrenv1.SubscribeLogsRequest_StartTime:
				req.Start = v
			case *warrenv1.SubscribeLogsRequest_StartAt:
				req.Start = v
			}
			_, err := subscribeReq(t, tc.client, req)
			st := status.Convert(err)
			if err == nil || st.Code() != tc.want || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("SubscribeLogs: %v, want %v with %q", err, tc.want, tc.msg)
			}
			t.Logf("%v: %s", st.Code(), st.Message())
		})
	}
	// Still serving, from the last offset plus one: what a client that
	// is up to date resumes with.
	s, err = subscribeReq(t, h.client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"#"}, Start: offset(last + 1)})
	if err != nil {
		t.Fatalf("from the last offset plus one: %v", err)
	}
	h.emit(t, topic, "a.b", "next")
	if m := s.recvN(t, 1, 10*time.Second)[0]; m.GetBody() != "next" {
		t.Fatalf("got %q, want next", m.GetBody())
	}
}

// TestHistoryRetention: once retention deleted the oldest segments, an
// offset among them is OUT_OF_RANGE, naming the oldest offset kept, and
// FIRST starts there.
func TestHistoryRetention(t *testing.T) {
	h := start(t, withHistory(History{MaxBytes: 20000, SegmentBytes: 4000}))
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; ; n += 200 {
		h.emitNumbered(t, topic, "r", n, n+200)
		_, err := subscribeReq(t, h.client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"r"},
			Start: &warrenv1.SubscribeLogsRequest_StartOffset{StartOffset: 0}})
		if st := status.Convert(err); st.Code() == codes.OutOfRange {
			t.Logf("after %d messages: %s", n+200, st.Message())
			if !strings.Contains(st.Message(), "no longer kept") {
				t.Fatalf("message %q does not say the offset is gone", st.Message())
			}
			break
		} else if err != nil {
			t.Fatalf("from offset 0: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("retention deleted nothing within 30s")
		}
	}
	s, err := subscribeReq(t, h.client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"r"},
		Start: &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_FIRST}})
	if err != nil {
		t.Fatal(err)
	}
	if n := numbers(t, s.recvN(t, 1, 10*time.Second))[0]; n == 0 {
		t.Fatal("FIRST started at message 0, which retention deleted")
	}
}

// dialAddr returns a client of the gateway through addr (a proxy), on a
// connection of its own, closed at cleanup.
func (h *harness) dialAddr(t testing.TB, addr string) warrenv1.LogServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return warrenv1.NewLogServiceClient(cc)
}

// TestHistoryAcrossLosses: live and replaying subscriptions end with
// UNAVAILABLE when the gateway loses its broker connection and when it
// shuts down; what was published meanwhile (here by another AMQP client,
// while the gateway had no connection) is in the history, so a client
// that resumes from its last offset plus one, on the gateway again or on
// a new one, misses nothing and gets nothing twice.
func TestHistoryAcrossLosses(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, withHistory(History{}))
	h := start(t, cfg)
	live := h.subscribe(t, topic, "#")
	replay, err := subscribeReq(t, h.client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"#"},
		Start: &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_FIRST}})
	if err != nil {
		t.Fatal(err)
	}
	h.emitNumbered(t, topic, "k", 0, 5)
	wantRun(t, numbers(t, live.recvN(t, 5, 10*time.Second)), 0)
	ms := replay.recvN(t, 5, 10*time.Second)
	wantRun(t, numbers(t, ms), 0)
	last := *ms[4].Offset

	warrentest.CloseConnections(t, h.connName)
	for name, s := range map[string]*sub{"live": live, "replay": replay} {
		st, _ := s.recvEnd(t, 10*time.Second)
		if st.Code() != codes.Unavailable || st.Message() != core.ErrConnectionLost.Error() {
			t.Errorf("%s: ended with %v %q, want UNAVAILABLE %q", name, st.Code(), st.Message(), core.ErrConnectionLost)
		}
	}
	ch := brokertest.Channel(t)
	for _, body := range []string{"5", "6"} {
		if err := ch.PublishWithContext(context.Background(), h.cfg.TopicExchange, "k", false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	resume := func(client warrenv1.LogServiceClient) *sub {
		t.Helper()
		var s *sub
		warrentest.Eventually(t, 10*time.Second, "SubscribeLogs from the last offset plus one", func() bool {
			var err error
			s, err = subscribeReq(t, client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"#"},
				Start: &warrenv1.SubscribeLogsRequest_StartOffset{StartOffset: last + 1}})
			return err == nil
		})
		return s
	}
	s := resume(h.client)
	wantRun(t, numbers(t, s.recvN(t, 2, 10*time.Second)), 5)

	h.gw.Stop()
	if st, _ := s.recvEnd(t, 5*time.Second); st.Code() != codes.Unavailable || st.Message() != gateway.ErrShutdown.Error() {
		t.Errorf("replay at shutdown: ended with %v %q, want UNAVAILABLE %q", st.Code(), st.Message(), gateway.ErrShutdown)
	}
	// A new gateway on the same exchanges: the history is the broker's.
	h2 := start(t, cfg)
	s = resume(h2.client)
	wantRun(t, numbers(t, s.recvN(t, 2, 10*time.Second)), 5)
}

// TestHistoryExchangeDeleted: an exchange deleted and declared again lost
// its bindings, the history stream's among them; the gateway binds the
// stream again with the exchange, so the history goes on.
func TestHistoryExchangeDeleted(t *testing.T) {
	t.Parallel()
	h := start(t, withHistory(History{}))
	h.emit(t, topic, "a", "before")
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDelete(h.cfg.TopicExchange, false, false); err != nil {
		t.Fatal(err)
	}
	h.emit(t, topic, "a", "repaired") // declares the exchange again
	h.emit(t, topic, "a", "after")
	s, err := subscribeReq(t, h.client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"#"},
		Start: &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_FIRST}})
	if err != nil {
		t.Fatal(err)
	}
	got := keys(s.recvN(t, 2, 10*time.Second))
	if got[0] != "a:before" || got[1] != "a:repaired" && got[1] != "a:after" {
		t.Fatalf("history %q, want a:before then a:repaired (or a:after)", got)
	}
}

// TestHistoryReplayJoinsTheLiveFeed: a subscription that starts in the
// history reads it with a channel of its own, then, once caught up, joins
// the exchange's one consumer and closes that channel, with no gap and no
// duplicate at the switch, while messages keep coming (with a buffer of 64
// and a prefetch of 16, a try to join may overflow, and is retried).
func TestHistoryReplayJoinsTheLiveFeed(t *testing.T) {
	t.Parallel()
	cfg := withHistory(History{})
	cfg.MaxLength, cfg.Prefetch = 64, 16
	h := start(t, cfg)
	h.emitNumbered(t, topic, "j", 0, 2000)
	live := h.subscribe(t, topic, "x") // the Mux's consumer: its channels
	_ = live
	base, ok := brokerChannels(t, h.connName)
	if !ok {
		t.Fatal("cannot count the gateway's channels (rabbitmqctl)")
	}
	s, err := subscribeReq(t, h.client, &warrenv1.SubscribeLogsRequest{Exchange: topic, BindingKeys: []string{"#"},
		Start: &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_FIRST}})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := brokerChannels(t, h.connName); n != base+1 {
		t.Errorf("replaying: %d channels, want %d (its own, and the Mux's %d)", n, base+1, base)
	}
	const total = 6000
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for i := 2000; i < total; i += 100 {
			h.emitNumbered(t, topic, "j", i, i+100)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	got := numbers(t, s.recvN(t, total, 60*time.Second))
	<-emitted
	wantRun(t, got, 0)
	// Each look at the broker is a rabbitmqctl run, seconds long on a
	// loaded machine: the deadline counts a few of them.
	warrentest.Eventually(t, 30*time.Second, "the replay's channel closed", func() bool {
		h.emitNumbered(t, topic, "j", total, total+1) // a live message to switch on
		n, _ := brokerChannels(t, h.connName)
		return n == base
	})
}

// TestHistorySlowSubscriberReadsOn is TestSlowSubscriber with a history:
// the slow subscriber's backlog in the gateway overflows as there, but
// instead of ending with RESOURCE_EXHAUSTED it reads on from the history
// at its own pace, and gets all 1,500 messages, in order; the fast one
// is not slowed.
func TestHistorySlowSubscriberReadsOn(t *testing.T) {
	t.Parallel()
	const n, chunk = 1500, 100
	cfg := withHistory(History{})
	cfg.Prefetch, cfg.MaxLength = 8, 500
	h, slow, fast := startSlowAndFast(t, cfg)
	h.emitPast(t, fast, n, chunk)
	for i, m := range slow.recvN(t, n, 30*time.Second) {
		if !strings.HasPrefix(m.GetBody(), fmt.Sprint(i, "x")) {
			t.Fatalf("slow subscriber message %d: body %.10q, want %d… (in order, no gaps)", i, m.GetBody(), i)
		}
	}
}

// startSlowAndFast serves cfg and subscribes twice to the direct exchange
// with key "k": slow, on a client connection with a small fixed HTTP/2
// window (which also turns off BDP window growth), so that its transport
// holds only about 64 messages of emitPast's, and fast.
func startSlowAndFast(t *testing.T, cfg Config) (h *harness, slow, fast *sub) {
	t.Helper()
	h = startTCP(t, cfg)
	slowClient := h.dial(t, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	slow, err := subscribeWith(slowClient, direct, "k")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.cancel)
	return h, slow, h.subscribe(t, direct, "k")
}

// emitPast emits n messages of 1,000 bytes, numbered, to the direct
// exchange with key "k", in EmitLogs streams of chunk, and checks that the
// fast subscriber receives each chunk, in order, before the next goes out:
// what a slow subscriber on the same key does leaves the others at full
// speed.
func (h *harness) emitPast(t *testing.T, fast *sub, n, chunk int) {
	t.Helper()
	body := strings.Repeat("x", 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for c := 0; c < n; c += chunk {
		es, err := h.client.EmitLogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := c; i < c+chunk; i++ {
			if err := es.Send(&warrenv1.EmitLogsRequest{Exchange: direct, RoutingKey: "k", Body: fmt.Sprint(i, body)}); err != nil {
				t.Fatalf("EmitLogs Send %d: %v", i, err)
			}
		}
		if resp, err := es.CloseAndRecv(); err != nil || resp.GetCount() != uint64(chunk) {
			t.Fatalf("EmitLogs: got %v, %v, want count %d", resp, err, chunk)
		}
		for i, m := range fast.recvN(t, chunk, 20*time.Second) {
			if !strings.HasPrefix(m.GetBody(), fmt.Sprint(c+i, "x")) {
				t.Fatalf("fast subscriber message %d: body %.10q, want %d…", c+i, m.GetBody(), c+i)
			}
		}
	}
}
