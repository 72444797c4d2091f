package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// name is an entity name of the test's own.
func name(kind string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "test.cluster." + kind + "." + hex.EncodeToString(b[:])
}

// call is one call a load made: when it started and ended, and how.
type call struct {
	start, end time.Time
	code       codes.Code
	id         string // a task's body
	err        error
}

// calls is a log of calls, safe for concurrent use.
type calls struct {
	mu  sync.Mutex
	all []call
}

func (l *calls) add(c call) {
	l.mu.Lock()
	l.all = append(l.all, c)
	l.mu.Unlock()
}

func (l *calls) snapshot() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// load runs goroutines until stop; each records what it did.
type load struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newLoad() *load {
	ctx, cancel := context.WithCancel(context.Background())
	return &load{ctx: ctx, cancel: cancel}
}

func (l *load) stop() { l.cancel(); l.wg.Wait() }

// fib keeps callers Fibonacci callers busy, each call with a 10 s
// deadline: a call that hangs to its deadline shows as DEADLINE_EXCEEDED.
func (l *load) fib(client warrenv1.FibonacciServiceClient, callers int, log *calls, opts ...grpc.CallOption) {
	for range callers {
		l.wg.Go(func() {
			for l.ctx.Err() == nil {
				start := time.Now()
				ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
				_, err := client.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 20}, opts...)
				cancel()
				if l.ctx.Err() != nil {
					return
				}
				log.add(call{start: start, end: time.Now(), code: status.Code(err), err: err})
				if err != nil {
					time.Sleep(5 * time.Millisecond) // fail-fast calls would spin
				}
			}
		})
	}
}

// tasks keeps submitters submitting tasks with unique bodies, each with a
// 10 s deadline.
func (l *load) tasks(client warrenv1.TaskServiceClient, submitters int, prefix string, log *calls) {
	for s := range submitters {
		l.wg.Go(func() {
			for i := 0; l.ctx.Err() == nil; i++ {
				id := fmt.Sprintf("%s-%d-%d", prefix, s, i)
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: id})
				cancel()
				log.add(call{start: start, end: time.Now(), code: status.Code(err), id: id, err: err})
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(5 * time.Millisecond) // a steady trickle, not a flood
			}
		})
	}
}

// subscriptions holds n SubscribeLogs streams on the fanout exchange; when
// one ends it records how and subscribes again. An emitter emits a log
// every 50 ms; received counts what the streams got.
type subscriptions struct {
	ended    calls // end = when a stream ended, code = how, id = "held" if it had received a log
	mu       sync.Mutex
	received int
	lastRecv time.Time
}

func (l *load) subscribe(client warrenv1.LogServiceClient, n int, subs *subscriptions) {
	for range n {
		l.wg.Go(func() {
			for l.ctx.Err() == nil {
				start := time.Now()
				stream, err := client.SubscribeLogs(l.ctx, &warrenv1.SubscribeLogsRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_FANOUT})
				held := ""
				for err == nil {
					_, err = stream.Recv()
					if err == nil {
						held = "held"
						subs.mu.Lock()
						subs.received++
						subs.lastRecv = time.Now()
						subs.mu.Unlock()
					}
				}
				if l.ctx.Err() != nil {
					return
				}
				subs.ended.add(call{start: start, end: time.Now(), code: status.Code(err), id: held})
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	l.wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.ctx.Done():
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
			_, _ = client.EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_FANOUT, Body: fmt.Sprint("log ", i)})
			cancel()
		}
	})
}

// healthLog records the gateway's overall health status as Watch reports
// it.
type healthLog struct {
	mu      sync.Mutex
	changes []healthChange
}

type healthChange struct {
	at     time.Time
	status healthpb.HealthCheckResponse_ServingStatus
}

func (l *load) watchHealth(conn grpc.ClientConnInterface, h *healthLog) {
	l.wg.Go(func() {
		for l.ctx.Err() == nil {
			stream, err := healthpb.NewHealthClient(conn).Watch(l.ctx, &healthpb.HealthCheckRequest{})
			for err == nil {
				var r *healthpb.HealthCheckResponse
				r, err = stream.Recv()
				if err == nil {
					h.mu.Lock()
					h.changes = append(h.changes, healthChange{time.Now(), r.Status})
					h.mu.Unlock()
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func (h *healthLog) snapshot() []healthChange {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.changes)
}

// connLog is a slog.Handler that records the Supervisor's connection
// events: which URL it connected to, and when a connection was lost.
type connLog struct {
	mu     sync.Mutex
	events []connEvent
}

type connEvent struct {
	at   time.Time
	up   bool
	url  string
	text string
}

func (c *connLog) Enabled(context.Context, slog.Level) bool { return true }
func (c *connLog) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *connLog) WithGroup(string) slog.Handler            { return c }
func (c *connLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "amqp connected" && r.Message != "amqp connection lost" {
		return nil
	}
	e := connEvent{at: r.Time, up: r.Message == "amqp connected", text: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "url" {
			e.url = a.Value.String()
		}
		return true
	})
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	return nil
}

// current is the URL of the connection last set up, "" when the last
// event was a loss.
func (c *connLog) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.events); n > 0 && c.events[n-1].up {
		return c.events[n-1].url
	}
	return ""
}

// after returns the first event of kind up at or after t.
func (c *connLog) after(t time.Time, up bool) (connEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e.up == up && !e.at.Before(t) {
			return e, true
		}
	}
	return connEvent{}, false
}

// codeCounts formats counts of codes as "UNAVAILABLE×3 ...", sorted.
func codeCounts(m map[codes.Code]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for c, n := range m {
		parts = append(parts, fmt.Sprintf("%d %s", n, codeName(c)))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// codeName is a code as the gRPC spec spells it: DEADLINE_EXCEEDED.
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// percentile returns the p-th percentile (0-100) of ds, nearest rank.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	return s[max(i-1, 0)]
}

func ms(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}
