// Package store is the example's inventory: an InventoryService kept in
// memory, served by warren's worker SDK (see ../README.md).
package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
)

// Store implements inventory.v1.InventoryService in memory.
type Store struct {
	inventoryv1.UnimplementedInventoryServiceServer

	mu    sync.Mutex
	items map[string]*inventoryv1.Item
	seq   int
}

// New returns a Store holding items.
func New(items ...*inventoryv1.Item) *Store {
	s := &Store{items: map[string]*inventoryv1.Item{}}
	for _, it := range items {
		s.items[it.GetSku()] = it
	}
	return s
}

// Reserve takes units out of stock. Too few units left is
// FAILED_PRECONDITION with a PreconditionFailure detail saying how many
// are left. The reservation id names the caller's "tenant" metadata, if
// any, to show that metadata travels.
func (s *Store) Reserve(ctx context.Context, req *inventoryv1.ReserveRequest) (*inventoryv1.ReserveResponse, error) {
	if req.GetCount() == 0 {
		return nil, status.Error(codes.InvalidArgument, "count must be at least 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[req.GetSku()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	}
	if it.GetStock() < req.GetCount() {
		st, err := status.New(codes.FailedPrecondition, "not enough stock").WithDetails(&errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{
				Type:        "STOCK",
				Subject:     req.GetSku(),
				Description: fmt.Sprintf("%d left", it.GetStock()),
			}},
		})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	it.Stock -= req.GetCount()
	s.seq++
	id := fmt.Sprintf("r%d", s.seq)
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("tenant")) > 0 {
		id = md.Get("tenant")[0] + "/" + id
	}
	return &inventoryv1.ReserveResponse{ReservationId: id, Left: it.GetStock()}, nil
}

// GetItem returns an item and its stock.
func (s *Store) GetItem(_ context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.GetItemResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[req.GetSku()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	}
	return &inventoryv1.GetItemResponse{Item: &inventoryv1.Item{Sku: it.GetSku(), Name: it.GetName(), Stock: it.GetStock()}}, nil
}

// Restock adds units to an item's stock: the task a Restock call queued.
// An unknown SKU is NOT_FOUND: the task is rejected, not retried.
func (s *Store) Restock(_ context.Context, req *inventoryv1.RestockRequest) (*inventoryv1.RestockResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[req.GetSku()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	}
	it.Stock += req.GetCount()
	return &inventoryv1.RestockResponse{}, nil
}

// Stocktake sends each item asked for, in order, with its stock.
func (s *Store) Stocktake(req *inventoryv1.StocktakeRequest, stream grpc.ServerStreamingServer[inventoryv1.StocktakeResponse]) error {
	s.mu.Lock()
	skus := req.GetSkus()
	if len(skus) == 0 {
		skus = slices.Sorted(maps.Keys(s.items))
	}
	items := make([]*inventoryv1.Item, 0, len(skus))
	var missing string
	for _, sku := range skus {
		it, ok := s.items[sku]
		if !ok {
			missing = sku
			break
		}
		items = append(items, &inventoryv1.Item{Sku: it.GetSku(), Name: it.GetName(), Stock: it.GetStock()})
	}
	s.mu.Unlock()
	for i, it := range items {
		if err := stream.Send(&inventoryv1.StocktakeResponse{Item: it, Counted: uint32(i + 1), Total: uint32(len(skus))}); err != nil {
			return err
		}
	}
	if missing != "" {
		return status.Errorf(codes.NotFound, "no item %q", missing)
	}
	return nil
}
