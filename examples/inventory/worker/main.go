// Command worker serves the example's InventoryService on warren's Go SDK:
// the Reserve and GetItem RPCs, the Restock tasks and the Stocktake
// stream, from the queues inventory.proto's routes name. See
// ../README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/warrenrpc/warren/core"
	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/examples/inventory/store"
	"github.com/warrenrpc/warren/worker"
)

func main() {
	url := flag.String("amqp-url", core.DefaultURL, "broker URL")
	prefix := flag.String("route-prefix", "", "the gateway's --route-prefix")
	flag.Parse()

	srv := worker.NewServer(worker.ServerConfig{Prefix: *prefix})
	inventoryv1.RegisterInventoryServiceServer(srv, store.New(
		&inventoryv1.Item{Sku: "tea", Name: "Green tea, 100 g", Stock: 5},
		&inventoryv1.Item{Sku: "coffee", Name: "Coffee beans, 250 g", Stock: 2},
	))
	group := worker.NewGroup(worker.Config{AMQP: core.Config{URLs: []string{*url}, Name: "inventory-worker"}}, srv)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.Info("inventory worker: serving inventory.v1.InventoryService")
	if err := group.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "inventory worker:", err)
		os.Exit(1)
	}
}
