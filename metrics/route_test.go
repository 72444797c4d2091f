package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/warrenrpc/warren/core"
	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/examples/inventory/store"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/metrics"
	"github.com/warrenrpc/warren/route"
	"github.com/warrenrpc/warren/worker"
)

// TestMetricsOfARoutedService: a service routed from a descriptor set and
// served by the worker SDK is measured like warren's own, with no code of
// its own: its gRPC methods, its RPC and task routes' queues, and the
// codes its handlers returned.
func TestMetricsOfARoutedService(t *testing.T) {
	t.Parallel()
	prefix := brokertest.Name(t, "route") + "."
	t.Cleanup(func() {
		deleteEntities(prefix, []string{"inventory.reserve", "inventory.v1.InventoryService.GetItem", "inventory.restock", "inventory.stocktake"}, "inventory.events")
	})
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := worker.NewServer(worker.ServerConfig{Prefix: prefix, Logger: warrentest.QuietLog})
	inventoryv1.RegisterInventoryServiceServer(srv, store.New(&inventoryv1.Item{Sku: "tea", Stock: 5}))
	warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{Metrics: m}}, srv)
	svcs, err := route.NewServices(route.Config{Prefix: prefix, Logger: warrentest.QuietLog},
		warrentest.DescriptorSet(t, inventoryv1.File_inventory_v1_inventory_proto))
	if err != nil {
		t.Fatal(err)
	}
	var gs []gateway.Service
	for _, s := range svcs {
		gs = append(gs, s)
	}
	g := warrentest.StartGateway(t, gateway.Config{Metrics: m}, gs...)
	client := inventoryv1.NewInventoryServiceClient(g.Conn)
	ctx := ctxFor(t, 30*time.Second)

	if _, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "tea"}); err != nil {
		t.Fatalf("GetItem(tea): %v", err)
	}
	_, err = client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "coffee"})
	warrentest.WantCode(t, err, codes.NotFound)
	for _, sku := range []string{"tea", "coffee"} {
		if _, err := client.Restock(ctx, &inventoryv1.RestockRequest{Sku: sku, Count: 1}); err != nil {
			t.Fatalf("Restock(%s): %v", sku, err)
		}
	}
	_, err = client.Audit(ctx, &inventoryv1.AuditRequest{})
	warrentest.WantCode(t, err, codes.Unimplemented)

	getItem, restock := prefix+"inventory.v1.InventoryService.GetItem", prefix+"inventory.restock"
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"grpc_server_handled_total", map[string]string{"grpc_service": "inventory.v1.InventoryService", "grpc_method": "GetItem", "grpc_code": "OK"}, 1},
		{"grpc_server_handled_total", map[string]string{"grpc_service": "inventory.v1.InventoryService", "grpc_method": "GetItem", "grpc_code": "NotFound"}, 1},
		{"grpc_server_handled_total", map[string]string{"grpc_service": "inventory.v1.InventoryService", "grpc_method": "Restock", "grpc_code": "OK"}, 2},
		// A method without a route is not registered: grpc-go answers
		// it before any interceptor, and nothing counts it.
		{"grpc_server_started_total", map[string]string{"grpc_method": "Audit"}, 0},
		{"warren_amqp_reply_seconds", map[string]string{"queue": getItem}, 2},
		{"warren_worker_handled_total", map[string]string{"queue": getItem, "code": "OK"}, 1},
		{"warren_worker_handled_total", map[string]string{"queue": getItem, "code": "NotFound"}, 1},
		{"warren_amqp_confirms_total", map[string]string{"exchange": "", "queue": restock, "outcome": "ack"}, 2},
		// The task's code reaches the metrics (core.SetOutcome); a
		// NOT_FOUND task is rejected, not retried.
		{"warren_worker_handled_total", map[string]string{"queue": restock, "code": "OK"}, 1},
		{"warren_worker_handled_total", map[string]string{"queue": restock, "code": "NotFound"}, 1},
		{"warren_worker_dead_lettered_total", map[string]string{"queue": restock}, 1},
	}
	// The tasks are handled after their calls returned.
	warrentest.Eventually(t, 10*time.Second, "the tasks handled", func() bool {
		return value(t, reg, "warren_worker_handled_total", map[string]string{"queue": restock}) == 2
	})
	for _, tt := range tests {
		if got := value(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

// deleteEntities deletes the queues and the exchange named, each under
// prefix.
func deleteEntities(prefix string, queues []string, exchange string) {
	conn, err := amqp.Dial(brokertest.URL())
	if err != nil {
		return
	}
	defer conn.Close()
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(prefix+q, false, false, false)
			_ = ch.Close()
		}
	}
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete(prefix+exchange, false, false)
		_ = ch.Close()
	}
}
