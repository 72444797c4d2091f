package logsvc

// Benchmarks: go test -run '^$' -bench . ./logsvc/
//
// Each benchmark measures warren and a raw amqp091-go baseline in the same
// run, one after the other in every iteration, on the same exchange, and
// reports both rates and their ratio (warren/raw): the machine is noisy,
// absolute rates mean little, ratios measured side by side do. Each
// iteration is bounded (a fixed count of messages, a 60s timeout).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
)

const benchBody = "info: a log line of about sixty bytes, like a real one......"

// BenchmarkDeliveries: deliveries/s to N = 1, 100 and 1,000 gRPC streams (SubscribeLogs over
// bufconn, all on the exchange's one queue) next to the raw design of one
// exclusive queue per subscriber: N raw amqp091-go consumers, each with a
// queue of its own, the same prefetch and ack batching, on the same fanout
// exchange, fed by the same raw confirm-mode publisher. And the same
// streams on a gateway with a history (--log-history), whose one consumer
// reads the exchange's stream.
func BenchmarkDeliveries(b *testing.B) {
	for _, tc := range []struct{ streams, msgs int }{{1, 9000}, {100, 500}, {1000, 50}} {
		b.Run(fmt.Sprintf("streams=%d", tc.streams), func(b *testing.B) {
			h := start(b, Config{})
			hist := start(b, withHistory(History{})) // the same, on a history stream
			conn := brokertest.Dial(b)
			pub := newRawPublisher(b, conn)
			var raw, warren, history time.Duration
			for range b.N {
				raw += h.timeDeliveries(b, pub, tc.streams, tc.msgs, h.rawConsumers)
				warren += h.timeDeliveries(b, pub, tc.streams, tc.msgs, h.warrenStreams)
				history += hist.timeDeliveries(b, pub, tc.streams, tc.msgs, hist.warrenStreams)
			}
			total := float64(b.N * tc.streams * tc.msgs)
			rawRate, warrenRate, historyRate := total/raw.Seconds(), total/warren.Seconds(), total/history.Seconds()
			b.ReportMetric(rawRate, "raw-deliveries/s")
			b.ReportMetric(warrenRate, "warren-deliveries/s")
			b.ReportMetric(warrenRate/rawRate, "ratio")
			b.ReportMetric(historyRate/rawRate, "history-ratio")
			b.ReportMetric(0, "ns/op")
			b.Logf("deliveries to %d consumers: raw %.0f/s, warren %.0f/s, ratio %.2f; warren with --log-history %.0f/s, ratio %.2f",
				tc.streams, rawRate, warrenRate, warrenRate/rawRate, historyRate, historyRate/rawRate)
		})
	}
}

// consumers starts n consumers of the fanout exchange that add each
// delivery to count; it returns once they are ready, and a stop function.
type consumers func(b *testing.B, n int, count *atomic.Int64) (stop func())

// timeDeliveries times how long n consumers take to receive msgs messages
// each, from the first publish to the last delivery.
func (h *harness) timeDeliveries(b *testing.B, pub *rawPublisher, n, msgs int, start consumers) time.Duration {
	b.Helper()
	var count atomic.Int64
	stop := start(b, n, &count)
	defer stop()
	runtime.GC()
	want := int64(n * msgs)
	t0 := time.Now()
	pub.publish(b, h.cfg.FanoutExchange, msgs, 512)
	deadline := t0.Add(60 * time.Second)
	for count.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries after 60s", count.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(t0)
}

// rawConsumers are amqp091-go consumers as the tutorials' receivers, made
// as fast as bounded memory allows: one connection, a channel each,
// prefetch as warren's, acks batched as warren's subscriptions do (multiple,
// whenever no further delivery waits and at least every Prefetch/2).
func (h *harness) rawConsumers(b *testing.B, n int, count *atomic.Int64) func() {
	b.Helper()
	conn, err := amqp.Dial(brokertest.URL())
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for range n {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Qos(h.cfg.Prefetch, 0, false); err != nil {
			b.Fatal(err)
		}
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.QueueBind(q.Name, "", h.cfg.FanoutExchange, false, nil); err != nil {
			b.Fatal(err)
		}
		deliveries, err := ch.Consume(q.Name, "", false, true, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := max(1, h.cfg.Prefetch/2)
			for d := range deliveries {
				unacked, last := 0, uint64(0)
				for ok := true; ok; {
					count.Add(1)
					unacked, last = unacked+1, d.DeliveryTag
					if unacked >= batch {
						_ = ch.Ack(last, true)
						unacked = 0
					}
					select {
					case d, ok = <-deliveries:
					default:
						ok = false
					}
				}
				if unacked > 0 {
					_ = ch.Ack(last, true)
				}
			}
		}()
	}
	return func() {
		_ = conn.Close()
		wg.Wait()
	}
}

// warrenStreams are SubscribeLogs streams, each read by a goroutine.
func (h *harness) warrenStreams(b *testing.B, n int, count *atomic.Int64) func() {
	b.Helper()
	subs := h.subscribeMany(b, n, fanout)
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := s.stream.Recv(); err != nil {
					return
				}
				count.Add(1)
			}
		}()
	}
	return func() {
		for _, s := range subs {
			s.cancel()
		}
		wg.Wait()
	}
}

// subscribeMany opens n subscriptions, 20 at a time.
func (h *harness) subscribeMany(b *testing.B, n int, ex warrenv1.LogExchange, keys ...string) []*sub {
	b.Helper()
	subs := make([]*sub, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 20)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := h.trySubscribe(ex, keys...)
			if err != nil {
				errs <- err
				return
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, s := range subs {
			if s != nil {
				s.cancel()
			}
		}
		b.Fatalf("subscribe: %v", err)
	}
	return subs
}

// rawPublisher publishes with confirms, pipelined, as EmitLogs does.
type rawPublisher struct{ ch *amqp.Channel }

func newRawPublisher(b *testing.B, conn *amqp.Connection) *rawPublisher {
	b.Helper()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	return &rawPublisher{ch: ch}
}

// publish publishes n messages keeping up to window unconfirmed.
func (p *rawPublisher) publish(b *testing.B, exchange string, n, window int) {
	b.Helper()
	ctx := context.Background()
	pending := make([]*amqp.DeferredConfirmation, 0, n)
	for i := range n {
		if i >= window && !pending[i-window].Wait() {
			b.Fatal("nack")
		}
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "k", false, false, amqp.Publishing{Body: []byte(benchBody), Timestamp: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending[max(0, n-window):] {
		if !dc.Wait() {
			b.Fatal("nack")
		}
	}
}

// BenchmarkEmit: messages/s through EmitLogs (one stream, confirm window
// 512) next to a raw publisher with the same window, and through EmitLog
// with 16 concurrent callers next to 16 goroutines that each publish and
// wait for the confirm on one shared channel, as the Service does. The
// exchange has no bindings, so the broker's routing work is the same and
// small for both.
func BenchmarkEmit(b *testing.B) {
	b.Run("stream", func(b *testing.B) {
		const msgs = 20000
		h := start(b, Config{})
		pub := newRawPublisher(b, brokertest.Dial(b))
		var raw, warren time.Duration
		for range b.N {
			t0 := time.Now()
			pub.publish(b, h.cfg.FanoutExchange, msgs, h.cfg.EmitWindow)
			raw += time.Since(t0)
			t0 = time.Now()
			h.emitStream(b, msgs)
			warren += time.Since(t0)
		}
		reportRates(b, "msgs", float64(b.N*msgs), raw, warren)
	})
	b.Run("unary-callers=16", func(b *testing.B) {
		const msgs, callers = 10000, 16
		h := start(b, Config{})
		pub := newRawPublisher(b, brokertest.Dial(b))
		var raw, warren time.Duration
		for range b.N {
			raw += parallel(callers, msgs/callers, func() error {
				dc, err := pub.ch.PublishWithDeferredConfirmWithContext(context.Background(), h.cfg.FanoutExchange, "k", false, false, amqp.Publishing{Body: []byte(benchBody), Timestamp: time.Now()})
				if err == nil && !dc.Wait() {
					err = errors.New("nack")
				}
				return err
			})
			warren += parallel(callers, msgs/callers, func() error {
				_, err := h.client.EmitLog(context.Background(), &warrenv1.EmitLogRequest{Exchange: fanout, RoutingKey: "k", Body: benchBody})
				return err
			})
		}
		reportRates(b, "msgs", float64(b.N*msgs/callers*callers), raw, warren)
	})
}

func reportRates(b *testing.B, unit string, total float64, raw, warren time.Duration) {
	rawRate, warrenRate := total/raw.Seconds(), total/warren.Seconds()
	b.ReportMetric(rawRate, "raw-"+unit+"/s")
	b.ReportMetric(warrenRate, "warren-"+unit+"/s")
	b.ReportMetric(warrenRate/rawRate, "ratio")
	b.ReportMetric(0, "ns/op")
	b.Logf("%s: raw %.0f/s, warren %.0f/s, ratio %.2f", unit, rawRate, warrenRate, warrenRate/rawRate)
}

// parallel runs f each times in each of callers goroutines and returns the
// time it took.
func parallel(callers, each int, f func() error) time.Duration {
	var wg sync.WaitGroup
	var failed atomic.Value
	t0 := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := f(); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		panic(err)
	}
	return time.Since(t0)
}

func (h *harness) emitStream(b *testing.B, msgs int) {
	b.Helper()
	es, err := h.client.EmitLogs(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for range msgs {
		if err := es.Send(&warrenv1.EmitLogsRequest{Exchange: fanout, RoutingKey: "k", Body: benchBody}); err != nil {
			break
		}
	}
	resp, err := es.CloseAndRecv()
	if err != nil || resp.GetCount() != uint64(msgs) {
		b.Fatalf("EmitLogs: %v, %v", resp, err)
	}
}

// BenchmarkIdleSubscriptions: the process's Go heap and resident memory
// with 1,000 idle subscriptions, against the same process before them.
// The process holds both ends (the gRPC client streams too), so the
// figures are an upper bound for the gateway.
func BenchmarkIdleSubscriptions(b *testing.B) {
	const n = 1000
	h := start(b, Config{})
	for range b.N {
		heap0, rss0, g0 := memory()
		t0 := time.Now()
		subs := h.subscribeMany(b, n, topic, "app.*")
		setup := time.Since(t0)
		heap1, rss1, g1 := memory()
		for _, s := range subs {
			s.cancel()
		}
		b.ReportMetric(float64(heap1-heap0)/n/1024, "heap-KiB/sub")
		b.ReportMetric(float64(rss1-rss0)/n/1024, "rss-KiB/sub")
		b.ReportMetric(float64(heap1)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(rss1)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(g1-g0)/n, "goroutines/sub")
		b.ReportMetric(setup.Seconds(), "setup-s")
		b.ReportMetric(0, "ns/op")
		b.Logf("%d idle subscriptions: heap %.1f MiB (+%.1f KiB/sub), RSS %.1f MiB (+%.1f KiB/sub), %.1f goroutines/sub (both ends), set up in %v",
			n, float64(heap1)/(1<<20), float64(heap1-heap0)/n/1024, float64(rss1)/(1<<20), float64(rss1-rss0)/n/1024, float64(g1-g0)/n, setup.Round(time.Millisecond))
		// Let the subscriptions end (both ends' goroutines gone) before the
		// next iteration measures.
		deadline := time.Now().Add(30 * time.Second)
		for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// memory returns the Go heap in use, the resident set size and the
// goroutine count, after a GC.
func memory() (heap, rss int64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), vmRSS(), runtime.NumGoroutine()
}

func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
