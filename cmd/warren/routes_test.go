package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/examples/inventory/store"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/worker"
)

// TestGatewayServesADescriptorSet: `warren gateway --descriptor-set`
// serves a team's service, answered by a worker on warren's SDK.
func TestGatewayServesADescriptorSet(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	prefix := brokertest.Name(t, "routes") + "."
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, q := range []string{"inventory.reserve", "inventory.v1.InventoryService.GetItem"} {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(prefix+q, false, false, false)
			}
		}
	})
	set := warrentest.DescriptorSet(t, inventoryv1.File_inventory_v1_inventory_proto)
	addr := freeAddr(t)
	ents := newEntities(t)
	runInBackground(t, append([]string{"gateway", "--listen", addr, "--amqp-url", url, "--log-level", "error",
		"--descriptor-set", set, "--route-prefix", prefix}, ents.flags()...)...)

	srv := worker.NewServer(worker.ServerConfig{Prefix: prefix})
	inventoryv1.RegisterInventoryServiceServer(srv, store.New(&inventoryv1.Item{Sku: "tea", Name: "Green tea", Stock: 3}))
	warrentest.StartWorkers(t, worker.Config{}, srv)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := inventoryv1.NewInventoryServiceClient(conn)
	var got *inventoryv1.GetItemResponse
	waitFor(t, "GetItem through the gateway", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		got, err = client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "tea"})
		return err == nil
	})
	if got.GetItem().GetStock() != 3 || got.GetItem().GetName() != "Green tea" {
		t.Errorf("GetItem = %v, want Green tea with 3 in stock", got)
	}
}

func TestGatewayRefusesABadDescriptorSet(t *testing.T) {
	t.Parallel()
	noImports := warrentest.WriteProto(t, &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(inventoryv1.File_inventory_v1_inventory_proto),
	}})
	for _, tt := range []struct {
		name, set, want string
	}{
		{"missing", "/nonexistent/app.binpb", "warren: gateway: route: descriptor set: open /nonexistent/app.binpb: no such file or directory"},
		{"without its imports", noImports, `could not resolve import "google/protobuf/timestamp.proto"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			err := run(context.Background(), []string{"gateway", "--listen", "127.0.0.1:0", "--descriptor-set", tt.set}, new(strings.Builder), &stderr)
			if err == nil || exitCode(err) != 1 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("warren gateway --descriptor-set (%s): %v (exit %d), printed %q; want exit 1 and %q", tt.name, err, exitCode(err), stderr.String(), tt.want)
			}
		})
	}
}

// TestGatewayQueueTypeReachesTheHelloQueue: --queue-type is the type of
// the hello queue the gateway declares on Send, as it is of the workers'
// queues: quorum by default, classic (not durable, as the seed's
// send.py declares it) when asked.
func TestGatewayQueueTypeReachesTheHelloQueue(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	for _, tt := range []struct {
		name string
		flag []string
		want func(t testing.TB, queue string)
	}{
		{"default", nil, brokertest.WantQuorum},
		{"classic", []string{"--queue-type", "classic"}, func(t testing.TB, q string) { brokertest.WantClassic(t, q, false) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := freeAddr(t)
			ents := newEntities(t)
			args := append([]string{"gateway", "--listen", addr, "--amqp-url", url, "--log-level", "error"}, ents.flags()...)
			runInBackground(t, append(args, tt.flag...)...)
			queue := brokertest.Name(t, "hello")
			waitFor(t, "send through the gateway", func() bool {
				_, err := call("send", "--addr", addr, "--queue", queue, "hi")
				return err == nil
			})
			tt.want(t, queue)
		})
	}
}
