package route_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/auth"
	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/gateway"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/route"
)

// TestRoutesKeepToTheCallersScope: a routed event's routing key (from the
// request's fields) and a routed subscription's binding keys (from a
// request field) are checked against the caller's scopes by the core, with
// no code of the route's own.
func TestRoutesKeepToTheCallersScope(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	dir := t.TempDir()
	tokens, policy := filepath.Join(dir, "tokens"), filepath.Join(dir, "policy.json")
	if err := os.WriteFile(tokens, []byte(auth.HashToken("tea-team")+" tea\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := `{"name": "route", "allow_rules": [{"name": "all", "source": {"principals": ["*"]}}],
	  "scopes": [{"principals": ["tea"], "exchange": "EXCHANGE", "emit": ["tea.*"], "subscribe": ["tea.*"]}]}`
	if err := os.WriteFile(policy, []byte(strings.ReplaceAll(p, "EXCHANGE", prefix+eventsExchange)), 0o600); err != nil {
		t.Fatal(err)
	}
	guard, err := auth.New(auth.Config{PolicyFile: policy, TokensFile: tokens, Logger: warrentest.QuietLog})
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := route.NewServices(route.Config{Prefix: prefix}, warrentest.DescriptorSet(t, inventoryv1.File_inventory_v1_inventory_proto))
	if err != nil {
		t.Fatal(err)
	}
	var gs []gateway.Service
	for _, s := range svcs {
		gs = append(gs, s)
	}
	gw := warrentest.StartGateway(t, gateway.Config{Auth: guard}, gs...)
	client := inventoryv1.NewInventoryServiceClient(gw.Conn)
	ctx := metadata.AppendToOutgoingContext(warrentest.Ctx(t), "authorization", "Bearer tea-team")

	tests := []struct {
		name string
		call func(context.Context) error
		want codes.Code
	}{
		{"event tea.LEVEL_LOW", func(ctx context.Context) error {
			_, err := client.ReportLevel(ctx, &inventoryv1.StockLevel{Sku: "tea", Level: inventoryv1.StockLevel_LEVEL_LOW})
			return err
		}, codes.OK},
		{"event coffee.LEVEL_OUT", func(ctx context.Context) error {
			_, err := client.ReportLevel(ctx, &inventoryv1.StockLevel{Sku: "coffee", Level: inventoryv1.StockLevel_LEVEL_OUT})
			return err
		}, codes.PermissionDenied},
		{"subscribe tea.*", subscribeCall(client, "tea.*"), codes.OK},
		{"subscribe tea.* and *.LEVEL_OUT", subscribeCall(client, "tea.*", "*.LEVEL_OUT"), codes.PermissionDenied},
		{"subscribe #", subscribeCall(client, "#"), codes.PermissionDenied},
	}
	for _, tt := range tests {
		if got := status.Code(tt.call(ctx)); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// subscribeCall watches keys until the subscription is bound (nil) or
// refused.
func subscribeCall(client inventoryv1.InventoryServiceClient, keys ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := client.WatchLevels(ctx, &inventoryv1.WatchLevelsRequest{BindingKeys: keys})
		if err != nil {
			return err
		}
		md, err := st.Header()
		if err != nil || len(md.Get(wire.HeaderQueue)) > 0 {
			return err // bound, or not
		}
		_, err = st.Recv() // ended without a header: the status says why
		return err
	}
}
