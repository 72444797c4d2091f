package logsvc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

const (
	fanout = warrenv1.LogExchange_LOG_EXCHANGE_FANOUT
	direct = warrenv1.LogExchange_LOG_EXCHANGE_DIRECT
	topic  = warrenv1.LogExchange_LOG_EXCHANGE_TOPIC
)

// harness is a Service in a gateway served over bufconn for one test
// (warrentest.StartGateway), on exchanges and a connection name of the
// test's own.
type harness struct {
	svc      *Service
	cfg      Config // with defaults
	gw       *warrentest.Gateway
	connName string // the gateway's AMQP connection_name
	client   warrenv1.LogServiceClient
}

// testLog discards everything, or writes everything to stderr with -v.
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return warrentest.QuietLog
}

// testConfig gives cfg exchanges of the test's own, deleted at cleanup,
// where it names none.
func testConfig(t testing.TB, cfg Config) Config {
	t.Helper()
	for _, name := range []struct {
		field  *string
		prefix string
	}{
		{&cfg.FanoutExchange, "logs"},
		{&cfg.DirectExchange, "direct_logs"},
		{&cfg.TopicExchange, "topic_logs"},
	} {
		if *name.field == "" {
			*name.field = brokertest.Name(t, name.prefix)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLog()
	}
	return cfg
}

// gatewayConfig names the connection and reconnects fast.
func gatewayConfig(connName string, log *slog.Logger) gateway.Config {
	return gateway.Config{
		AMQP:   core.Config{Name: connName, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		Logger: log,
	}
}

// start serves a Service configured by cfg (with exchanges of the test's
// own where it names none) and returns once the gateway is connected.
func start(t testing.TB, cfg Config) *harness {
	t.Helper()
	cfg = testConfig(t, cfg)
	h := &harness{svc: New(cfg), connName: brokertest.Name(t, "conn")}
	h.cfg = h.svc.cfg
	h.gw = warrentest.StartGateway(t, gatewayConfig(h.connName, cfg.Logger), h.svc)
	h.client = warrenv1.NewLogServiceClient(h.gw.Conn)
	return h
}

// startTCP is start on a loopback TCP port (warrentest.StartGatewayTCP),
// for tests whose clients need dial options of their own (dial).
func startTCP(t testing.TB, cfg Config) *harness {
	t.Helper()
	cfg = testConfig(t, cfg)
	h := &harness{svc: New(cfg), connName: brokertest.Name(t, "conn")}
	h.cfg = h.svc.cfg
	h.gw = warrentest.StartGatewayTCP(t, gatewayConfig(h.connName, cfg.Logger), h.svc)
	h.client = warrenv1.NewLogServiceClient(h.gw.Conn)
	return h
}

// dial returns a client of a startTCP gateway on a connection of its own,
// dialled with opts and closed at cleanup.
func (h *harness) dial(t testing.TB, opts ...grpc.DialOption) warrenv1.LogServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(h.gw.Addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return warrenv1.NewLogServiceClient(cc)
}

// sub is a SubscribeLogs stream that is ready: its queue is bound.
type sub struct {
	stream grpc.ServerStreamingClient[warrenv1.SubscribeLogsResponse]
	queue  string
	cancel context.CancelFunc
}

// subscribe opens a subscription and waits for its QueueHeader.
func (h *harness) subscribe(t testing.TB, ex warrenv1.LogExchange, keys ...string) *sub {
	t.Helper()
	s, err := h.trySubscribe(ex, keys...)
	if err != nil {
		t.Fatalf("SubscribeLogs(%v, %q): %v", ex, keys, err)
	}
	t.Cleanup(s.cancel)
	return s
}

func (h *harness) trySubscribe(ex warrenv1.LogExchange, keys ...string) (*sub, error) {
	return subscribeWith(h.client, ex, keys...)
}

func subscribeWith(client warrenv1.LogServiceClient, ex warrenv1.LogExchange, keys ...string) (*sub, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.SubscribeLogs(ctx, &warrenv1.SubscribeLogsRequest{Exchange: ex, BindingKeys: keys})
	if err != nil {
		cancel()
		return nil, err
	}
	md, err := stream.Header()
	if err != nil {
		cancel()
		return nil, err
	}
	q := md.Get(QueueHeader)
	if len(q) != 1 {
		// The stream ended before it was ready: Recv has the status.
		_, err := stream.Recv()
		cancel()
		if err == nil || err == io.EOF {
			err = errors.New("stream ended without a queue header")
		}
		return nil, err
	}
	return &sub{stream: stream, queue: q[0], cancel: cancel}, nil
}

// recvN receives n messages within d.
func (s *sub) recvN(t testing.TB, n int, d time.Duration) []*warrenv1.SubscribeLogsResponse {
	t.Helper()
	got := make([]*warrenv1.SubscribeLogsResponse, 0, n)
	timer := time.AfterFunc(d, s.cancel)
	defer timer.Stop()
	for len(got) < n {
		m, err := s.stream.Recv()
		if err != nil {
			t.Fatalf("Recv after %d of %d messages: %v", len(got), n, err)
		}
		got = append(got, m)
	}
	return got
}

// recvEnd receives until the stream ends, within d, and returns its status
// and the messages before it.
func (s *sub) recvEnd(t testing.TB, d time.Duration) (*status.Status, []*warrenv1.SubscribeLogsResponse) {
	t.Helper()
	var got []*warrenv1.SubscribeLogsResponse
	timer := time.AfterFunc(d, s.cancel)
	defer timer.Stop()
	for {
		m, err := s.stream.Recv()
		if err != nil {
			if !timer.Stop() {
				t.Fatalf("stream did not end within %v (got %d messages)", d, len(got))
			}
			return status.Convert(err), got
		}
		got = append(got, m)
	}
}

func (h *harness) emit(t testing.TB, ex warrenv1.LogExchange, key, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.client.EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: ex, RoutingKey: key, Body: body}); err != nil {
		t.Fatalf("EmitLog(%v, %q, %q): %v", ex, key, body, err)
	}
}

// keys returns "routing_key:body" of each message.
func keys(ms []*warrenv1.SubscribeLogsResponse) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.GetRoutingKey() + ":" + m.GetBody()
	}
	return out
}

// queueExists asks the broker with a passive declare on a connection of
// the test's own: false on 404 NOT_FOUND.
func queueExists(t testing.TB, conn *amqp.Connection, name string) bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer func() { _ = ch.Close() }()
	_, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
	var aerr *amqp.Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
		return false
	case errors.As(err, &aerr) && aerr.Code == amqp.ResourceLocked:
		// 405: it exists, exclusive to another connection.
		return true
	}
	t.Fatalf("passive declare %q: %v", name, err)
	return false
}

// brokerChannels counts the channels of the connection named name with
// rabbitmqctl, which (unlike the management API's statistics) answers
// with the live count; ok is false without rabbitmqctl.
func brokerChannels(t testing.TB, name string) (channels int, ok bool) {
	t.Helper()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "-s", "list_connections", "channels", "client_properties").Output()
	if err != nil {
		t.Logf("rabbitmqctl list_connections: %v", err)
		return 0, false
	}
	// channels <TAB> client_properties (an Erlang term that holds
	// {"connection_name","..."}).
	for line := range strings.Lines(string(out)) {
		f := strings.SplitN(strings.TrimSpace(line), "\t", 2)
		if len(f) == 2 && strings.Contains(f[1], `{"connection_name","`+name+`"}`) {
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("rabbitmqctl list_connections: channels %q: %v", f[0], err)
			}
			return n, true
		}
	}
	t.Logf("rabbitmqctl list_connections: no connection named %q", name)
	return 0, false
}

// logBuffer is a slog handler's output that tests read while the gateway
// writes to it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// logger writes warnings and above to l.
func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
