package route_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/pytest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/route"
)

const pythonWorker = "../examples/inventory/python/worker.py"

// TestPythonWorkerServesInventory: the example's Python worker, on pika
// and python-protobuf with no warren code, serves InventoryService behind
// a gateway, both reading the same descriptor set. The set is either the
// inventory's alone, as buf build writes it (the worker then knows
// google.rpc's messages itself), or one that holds googleapis'
// google/rpc files too.
func TestPythonWorkerServesInventory(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		extra []protoreflect.FileDescriptor // in the set beside inventory.proto and its imports
	}{
		{name: "inventory alone"},
		{name: "with google.rpc", extra: []protoreflect.FileDescriptor{spb.File_google_rpc_status_proto, errdetails.File_google_rpc_error_details_proto}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requirePythonProtobuf(t)
			set := warrentest.DescriptorSet(t, append([]protoreflect.FileDescriptor{inventoryv1.File_inventory_v1_inventory_proto}, tt.extra...)...)
			prefix := queuePrefix(t)
			startPythonWorker(t, set, prefix, "--stock", "tea=5:Green tea, 100 g")
			client := startInventoryFrom(t, set, prefix)

			exerciseInventory(t, client)
			t.Run("on the wire", func(t *testing.T) {
				pythonOnTheWire(t, prefix+getItemQueue)
			})
		})
	}
}

// pythonOnTheWire sends the worker requests the gateway would not: one
// whose deadline has passed (skipped: no reply), one of another type
// (INVALID_ARGUMENT), then a good one, whose reply's properties it checks.
func pythonOnTheWire(t *testing.T, queue string) {
	ch := brokertest.Channel(t)
	replies, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("declare reply queue: %v", err)
	}
	ds, err := ch.Consume(replies.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatalf("consume replies: %v", err)
	}
	body := []byte(`{"sku": "tea"}`) // GetItem's codec is JSON
	for _, r := range []struct {
		id, typ  string
		deadline time.Time
	}{
		{"expired", "inventory.v1.GetItemRequest", time.Now().Add(-time.Second)},
		{"wrong type", "inventory.v1.Item", time.Now().Add(time.Minute)},
		{"good", "inventory.v1.GetItemRequest", time.Now().Add(time.Minute)},
	} {
		headers := amqp.Table{}
		wire.SetDeadline(headers, r.deadline)
		err := ch.PublishWithContext(warrentest.Ctx(t), "", queue, true, false, amqp.Publishing{
			ContentType: wire.ContentTypeJSON, Type: r.typ, CorrelationId: r.id,
			ReplyTo: replies.Name, Headers: headers, Body: body,
		})
		if err != nil {
			t.Fatalf("publish %s: %v", r.id, err)
		}
	}
	// One worker answers a queue's requests in order: had it answered the
	// expired one, that reply would come first.
	next := func() amqp.Delivery {
		t.Helper()
		select {
		case d := <-ds:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("no reply in 10s")
		}
		return amqp.Delivery{}
	}
	d := next()
	code, msg, isErr := wire.ReplyError(d.Headers)
	if d.CorrelationId != "wrong type" || !isErr || code != codes.InvalidArgument {
		t.Errorf("first reply: correlation id %q, error %v %v %q; want the wrong type's, INVALID_ARGUMENT", d.CorrelationId, isErr, code, msg)
	}
	d = next()
	var got inventoryv1.GetItemResponse
	if d.CorrelationId != "good" || d.ContentType != wire.ContentTypeJSON || d.Type != "inventory.v1.GetItemResponse" {
		t.Errorf("second reply: correlation id %q, content type %q, type %q; want good, %s, inventory.v1.GetItemResponse",
			d.CorrelationId, d.ContentType, d.Type, wire.ContentTypeJSON)
	}
	if err := protojson.Unmarshal(d.Body, &got); err != nil || got.GetItem().GetSku() != "tea" {
		t.Errorf("second reply's body %q: %v, %v; want the tea item", d.Body, &got, err)
	}
}

// startInventoryFrom serves the routed services of the descriptor set at
// path on a gateway, with their queues under prefix, and waits until
// InventoryService is SERVING.
func startInventoryFrom(t *testing.T, path, prefix string) inventoryv1.InventoryServiceClient {
	t.Helper()
	svcs, err := route.NewServices(route.Config{Prefix: prefix, PresenceInterval: 50 * time.Millisecond}, path)
	if err != nil {
		t.Fatal(err)
	}
	var gs []gateway.Service
	for _, s := range svcs {
		gs = append(gs, s)
	}
	gw := warrentest.StartGateway(t, gateway.Config{}, gs...)
	waitServing(t, gw, "inventory.v1.InventoryService")
	return inventoryv1.NewInventoryServiceClient(gw.Conn)
}

// startPythonWorker runs worker.py on the descriptor set at path and the
// queues under prefix, and waits until it consumes. At cleanup it sends
// SIGTERM and wants a clean exit.
func startPythonWorker(t *testing.T, path, prefix string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := pytest.Command(ctx, t, pythonWorker, brokertest.Require(t), append([]string{
		"--amqp-url", brokertest.URL(), "--descriptor-set", path, "--route-prefix", prefix,
	}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second // then SIGKILL
	stdout := &readyWriter{ready: make(chan struct{})}
	var stderr bytes.Buffer // read once Wait returned
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start worker.py: %v", err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if !cmd.ProcessState.Success() {
			t.Errorf("worker.py: %v, want a clean exit on SIGTERM\nstderr:\n%s", waitErr, &stderr)
		} else if t.Failed() {
			t.Logf("worker.py's stderr:\n%s", &stderr)
		}
	})
	select {
	case <-stdout.ready:
	case <-exited:
		t.Fatal("worker.py exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("worker.py not ready after 30s")
	}
}

// readyWriter is worker.py's stdout: ready closes at the line "ready".
type readyWriter struct {
	once  sync.Once
	line  []byte
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		if strings.TrimSpace(string(w.line[:i])) == "ready" {
			w.once.Do(func() { close(w.ready) })
		}
		w.line = w.line[i+1:]
	}
}

// requirePythonProtobuf stops the test when /usr/bin/python3 cannot import
// pika and google.protobuf: t.Fatal under CI (make test installs them with
// scripts/ensure-pika.sh), t.Skip otherwise.
func requirePythonProtobuf(t *testing.T) {
	t.Helper()
	pytest.Require(t)
	if err := exec.Command(pytest.Python, "-c", "import google.protobuf").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s cannot import google.protobuf under CI: %v (make test installs python3-protobuf)", pytest.Python, err)
		}
		t.Skipf("SKIPPING Python worker test: %s cannot import google.protobuf: %v (apt-get install python3-protobuf)", pytest.Python, err)
	}
}
