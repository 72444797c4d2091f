package worker_test

import (
	"strings"
	"testing"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/examples/inventory/store"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/worker"
)

func TestRegisterServiceRefusesWhatItCannotServe(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		register func(*worker.Server)
		want     string
	}{
		{"a service without routes", func(s *worker.Server) {
			warrenv1.RegisterFibonacciServiceServer(s, warrenv1.UnimplementedFibonacciServiceServer{})
		}, "worker: RegisterService(warren.v1.FibonacciService): route: no method has a route in warren.v1.FibonacciService"},
		{"an implementation of another service", func(s *worker.Server) {
			s.RegisterService(&inventoryv1.InventoryService_ServiceDesc, warrenv1.UnimplementedFibonacciServiceServer{})
		}, "does not implement inventoryv1.InventoryServiceServer"},
		{"a service with no descriptor", func(s *worker.Server) {
			desc := inventoryv1.InventoryService_ServiceDesc
			desc.ServiceName = "nowhere.Service"
			s.RegisterService(&desc, store.New())
		}, "no descriptor"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				p := recover()
				if msg, _ := p.(string); !strings.Contains(msg, tt.want) {
					t.Errorf("RegisterService panicked with %v, want a message containing %q", p, tt.want)
				}
			}()
			tt.register(worker.NewServer(worker.ServerConfig{}))
		})
	}
}
