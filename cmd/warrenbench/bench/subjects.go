package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/worker"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// benchN is the n every call asks for: the tutorial's example.
const benchN = 30

// grpcTarget serves a FibonacciService on loopback TCP and gives the load
// generator a client for it.
type grpcTarget struct {
	client warrenv1.FibonacciServiceClient
	close  func()
}

func dialTarget(addr string) (*grpc.ClientConn, warrenv1.FibonacciServiceClient, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return conn, warrenv1.NewFibonacciServiceClient(conn), nil
}

func (g *grpcTarget) call(ctx context.Context) error {
	resp, err := g.client.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: benchN})
	if err != nil {
		return err
	}
	if resp.GetValue() != "832040" {
		return fmt.Errorf("fib(30) = %q", resp.GetValue())
	}
	return nil
}

// echoService answers at once, without a broker: the gRPC hop alone.
type echoService struct {
	warrenv1.UnimplementedFibonacciServiceServer
}

func (echoService) Fibonacci(context.Context, *warrenv1.FibonacciRequest) (*warrenv1.FibonacciResponse, error) {
	return &warrenv1.FibonacciResponse{Value: "832040"}, nil
}

func startEcho() (*grpcTarget, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The gateway's gRPC server options, so that the echo is the same hop.
	srv := grpc.NewServer(grpc.NumStreamWorkers(gateway.DefaultStreamWorkers))
	warrenv1.RegisterFibonacciServiceServer(srv, echoService{})
	go func() { _ = srv.Serve(lis) }()
	conn, client, err := dialTarget(lis.Addr().String())
	if err != nil {
		srv.Stop()
		return nil, err
	}
	return &grpcTarget{client: client, close: func() { _ = conn.Close(); srv.Stop() }}, nil
}

// The bench's gateways serve only the service measured, and name every
// entity after the run's prefix, so that a bench run leaves nothing of its
// own on a broker that serves tutorials; deleteEntities removes them.

// deleteEntities deletes the entities named after prefix, and the queues
// in extra.
func deleteEntities(url, prefix string, extra ...string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	// A missing entity closes the channel: one channel each.
	for _, q := range append(extra, prefix+".tasks", prefix+".events.watchers") {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
	}
	for _, ex := range []string{".events"} {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(prefix+ex, false, false)
		}
	}
}

// gatewaySetup is one gateway under test.
type gatewaySetup struct {
	mode            core.ReplyMode
	noCoalescing    bool // every flush its own write syscall
	noStreamWorkers bool // a new goroutine for every gRPC call
}

// startGateway serves a warren gateway for queue on loopback TCP.
func startGateway(url, queue string, gs gatewaySetup) (*grpcTarget, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := gateway.Config{
		AMQP:   core.Config{URLs: []string{url}, Name: "warren-bench-gateway", DisableWriteCoalescing: gs.noCoalescing},
		Logger: quiet,
	}
	if gs.noStreamWorkers {
		cfg.StreamWorkers = -1
	}
	srv := gateway.New(cfg, []gateway.Service{fibsvc.New(fibsvc.Config{Queue: queue, ReplyMode: gs.mode})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, lis); close(done) }()
	conn, client, err := dialTarget(lis.Addr().String())
	if err != nil {
		cancel()
		<-done
		return nil, err
	}
	g := &grpcTarget{client: client, close: func() { _ = conn.Close(); cancel(); <-done }}
	// Wait until the gateway answers.
	for range 200 {
		if err := g.call(context.Background()); err == nil {
			return g, nil
		}
		sleep()
	}
	g.close()
	return nil, errors.New("gateway did not start answering")
}

// coreClient is warren's request/reply client called directly, as the
// gateway's FibonacciService calls it, without gRPC.
type coreClient struct {
	client *core.Client
	queue  string
	close  func()
}

func startCoreClient(url, queue string) (*coreClient, error) {
	sup := core.NewSupervisor(core.Config{URLs: []string{url}, Name: "warren-bench-core-client", Logger: quiet})
	c := &coreClient{client: core.NewClient(sup, core.ClientConfig{}), queue: queue}
	c.client.Watch(queue)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sup.Run(ctx); close(done) }()
	c.close = func() { cancel(); <-done }
	for range 500 {
		if c.client.Ready(queue) == nil {
			return c, nil
		}
		sleep()
	}
	c.close()
	return nil, errors.New("core client did not connect")
}

func (c *coreClient) call(ctx context.Context) error {
	var buf [8]byte
	d, err := c.client.Call(ctx, c.queue, amqp.Publishing{
		ContentType: "text/plain",
		Body:        strconv.AppendUint(buf[:0], benchN, 10),
	})
	if err == nil && string(d.Body) != "832040" {
		err = fmt.Errorf("core client: fib(%d) = %q", benchN, d.Body)
	}
	return err
}

// startWorker runs warren's Fibonacci worker on queue, a classic queue
// (queuetypes.go measures both types).
func startWorker(url, queue string) (stop func(), err error) {
	g := worker.NewGroup(worker.Config{AMQP: core.Config{URLs: []string{url}, Name: "warren-bench-worker"}, Logger: quiet},
		fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: queue, QueueType: core.QueueClassic}))
	return runGroup(g, "worker")
}

// rawClient is the baseline: a request/reply client written directly on
// amqp091-go the way a careful hand would, with the same reply path as the
// gateway mode it is compared with: one connection, one consumer for all
// replies, a pending map, and for direct reply-to the requests published on
// the consuming channel.
type rawClient struct {
	conn    *amqp.Connection
	pubs    []*amqp.Channel
	next    atomic.Uint32
	queue   string
	replyTo string
	prefix  string
	seq     atomic.Uint64

	mu      sync.Mutex
	pending map[string]chan []byte
}

func newRawClient(url, queue string, mode core.ReplyMode) (*rawClient, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	c := &rawClient{conn: conn, queue: queue, prefix: hex.EncodeToString(b[:]), pending: make(map[string]chan []byte)}
	var replies <-chan amqp.Delivery
	if mode == core.ReplyDirect {
		c.replyTo = "amq.rabbitmq.reply-to"
		c.pubs = []*amqp.Channel{ch}
	} else {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			conn.Close()
			return nil, err
		}
		c.replyTo = q.Name
		for range 4 {
			pc, err := conn.Channel()
			if err != nil {
				conn.Close()
				return nil, err
			}
			c.pubs = append(c.pubs, pc)
		}
	}
	replies, err = ch.Consume(c.replyTo, "", true, false, false, false, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	go func() {
		for d := range replies {
			c.mu.Lock()
			done, ok := c.pending[d.CorrelationId]
			delete(c.pending, d.CorrelationId)
			c.mu.Unlock()
			if ok {
				done <- d.Body
			}
		}
	}()
	return c, nil
}

func (c *rawClient) call(ctx context.Context) error {
	body, err := c.roundTrip(ctx, c.queue, amqp.Publishing{ContentType: "text/plain", Body: []byte(strconv.Itoa(benchN))})
	if err == nil && string(body) != "832040" {
		err = fmt.Errorf("fib(30) = %q", body)
	}
	return err
}

func (c *rawClient) close() { _ = c.conn.Close() }

// runGroup runs g until the stop it returns is called, once it is
// connected; what names it in the error when it never connects.
func runGroup(g *worker.Group, what string) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Run(ctx); close(done) }()
	for range 500 {
		if g.Connected() {
			return func() { cancel(); <-done }, nil
		}
		sleep()
	}
	cancel()
	<-done
	return nil, fmt.Errorf("%s did not connect", what)
}
