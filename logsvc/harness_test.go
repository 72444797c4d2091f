package logsvc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/amqpx"
	"github.com/warrenrpc/warren/internal/brokertest"
)

func TestMain(m *testing.M) {
	// Every goroutine a test starts (supervisor, gRPC server and client,
	// amqp091-go's readers) must be gone when the tests end; nothing is
	// ignored.
	goleak.VerifyTestMain(m)
}

// harness is a Service behind a gRPC server on a bufconn, kept connected
// by an amqpx.Supervisor, with exchanges of the test's own.
type harness struct {
	svc      *Service
	sup      *amqpx.Supervisor
	cfg      Config
	connName string
	client   warrenv1.LogServiceClient
	lis      *bufconn.Listener
	conns    chan *amqp.Connection // every connection handed to the Service
}

// recorder passes connections on to the Service and remembers them, so a
// test can close the one in use.
type recorder struct {
	*Service
	conns chan *amqp.Connection
}

func (r recorder) Connected(ctx context.Context, conn *amqp.Connection) error {
	select {
	case r.conns <- conn:
	default:
	}
	return r.Service.Connected(ctx, conn)
}

// quietLogger drops everything below warnings unless -v.
func quietLogger() *slog.Logger {
	level := slog.LevelError
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// start serves a Service configured by cfg (its exchange names replaced
// by the test's own) and returns once the Supervisor connected it.
func start(t testing.TB, cfg Config) *harness {
	t.Helper()
	url := brokertest.Require(t)
	cfg.FanoutExchange = brokertest.Name(t, "logs")
	cfg.DirectExchange = brokertest.Name(t, "direct_logs")
	cfg.TopicExchange = brokertest.Name(t, "topic_logs")
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	h := &harness{svc: New(cfg), conns: make(chan *amqp.Connection, 16)}
	h.cfg = h.svc.cfg
	h.connName = brokertest.Name(t, "conn")
	h.sup = amqpx.New(amqpx.Config{
		URLs:       []string{url},
		Name:       h.connName,
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		Logger:     cfg.Logger,
	}, recorder{h.svc, h.conns})

	ctx, cancel := context.WithCancel(context.Background())
	supDone := make(chan error, 1)
	go func() { supDone <- h.sup.Run(ctx) }()

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	warrenv1.RegisterLogServiceServer(srv, h.svc)
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		_ = srv.Serve(lis)
	}()
	h.lis = lis
	t.Cleanup(func() {
		h.svc.Shutdown()
		srv.Stop()
		<-srvDone
		cancel()
		if err := <-supDone; !errors.Is(err, amqpx.ErrClosed) {
			t.Errorf("supervisor Run: got %v, want ErrClosed", err)
		}
	})
	h.client = h.dial(t)
	h.waitConnected(t)
	return h
}

// dial returns a client on a connection of its own, closed at cleanup
// (before the server stops: cleanups run last registered first).
func (h *harness) dial(t testing.TB, opts ...grpc.DialOption) warrenv1.LogServiceClient {
	t.Helper()
	opts = append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	cc, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatalf("grpc client: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return warrenv1.NewLogServiceClient(cc)
}

// waitConnected waits until the Supervisor holds a connection.
func (h *harness) waitConnected(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !h.sup.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("supervisor did not connect within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
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

func wantCode(t testing.TB, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}
