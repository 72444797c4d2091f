package route_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
)

// stocktake calls Stocktake and returns what the stream carried and how
// it ended.
func stocktake(ctx context.Context, t *testing.T, client inventoryv1.InventoryServiceClient, skus ...string) ([]*inventoryv1.StocktakeResponse, error) {
	t.Helper()
	stream, err := client.Stocktake(ctx, &inventoryv1.StocktakeRequest{Skus: skus})
	if err != nil {
		return nil, err
	}
	var got []*inventoryv1.StocktakeResponse
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, r)
	}
}

func TestStreamRouteRelaysTheWorkersRepliesInOrder(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	gw, client := startInventory(t, prefix)
	coffee := &inventoryv1.Item{Sku: "coffee", Name: "Coffee beans", Stock: 4}
	startStore(t, prefix, tea(5), coffee)
	waitServing(t, gw, "inventory.v1.InventoryService")
	ctx := warrentest.Ctx(t)

	got, err := stocktake(ctx, t, client, "tea", "coffee")
	if err != nil {
		t.Fatal(err)
	}
	want := []*inventoryv1.StocktakeResponse{{Item: tea(5), Counted: 1, Total: 2}, {Item: coffee, Counted: 2, Total: 2}}
	if len(got) != len(want) || !proto.Equal(got[0], want[0]) || !proto.Equal(got[1], want[1]) {
		t.Errorf("Stocktake = %v, want %v", got, want)
	}

	// An error ends the stream after what was sent before it.
	got, err = stocktake(ctx, t, client, "tea", "nope", "coffee")
	if status.Code(err) != codes.NotFound || len(got) != 1 || !proto.Equal(got[0].GetItem(), tea(5)) {
		t.Errorf("Stocktake(tea, nope, coffee) = %v, %v; want tea, then NOT_FOUND", got, err)
	}
}

// TestStreamRouteForeignWorkerStreams: what a worker in any language may
// send back, right and wrong, and what the caller gets.
func TestStreamRouteForeignWorkerStreams(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	gw, client := startInventory(t, prefix)
	item, _ := proto.Marshal(&inventoryv1.StocktakeResponse{Item: tea(1), Counted: 1, Total: 1})
	reply := func(seq int64) amqp.Publishing {
		return amqp.Publishing{ContentType: wire.ContentTypeProtobuf, Type: "inventory.v1.StocktakeResponse",
			Headers: amqp.Table{wire.HeaderStreamSeq: seq}, Body: item}
	}
	end := amqp.Publishing{Headers: amqp.Table{wire.HeaderStreamEnd: true}}
	errEnd := amqp.Publishing{Headers: wire.ErrorHeaders(codes.Aborted, "stop")}
	errEnd.Headers[wire.HeaderStreamEnd] = int32(1) // no boolean type in some clients
	garbage := reply(0)
	garbage.Body = []byte{0xff, 0xff}
	streams := map[string][]amqp.Publishing{
		"two and end":      {reply(0), reply(1), end},
		"none and end":     {end},
		"error end":        {reply(0), errEnd},
		"out of order":     {reply(1), end},
		"repeated":         {reply(0), reply(0), end},
		"not a response":   {garbage, end},
		"never ends":       {reply(0)},
		"after its end":    {end, reply(0)},
		"unnumbered reply": {{ContentType: wire.ContentTypeProtobuf, Body: item}, end},
	}
	warrentest.FakeWorker(t, prefix+stocktakeQueue, func(ch *amqp.Channel, d amqp.Delivery) {
		name, _ := d.Headers[wire.HeaderMetadataPrefix+"stream"].(string)
		for _, p := range streams[name] {
			p.CorrelationId = d.CorrelationId
			if err := ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, p); err != nil {
				t.Errorf("publish: %v", err)
			}
		}
		_ = d.Ack(false)
	})
	for _, q := range []string{reserveQueue, getItemQueue} { // for health
		warrentest.FakeWorker(t, prefix+q, func(*amqp.Channel, amqp.Delivery) {})
	}
	waitServing(t, gw, "inventory.v1.InventoryService")
	for _, tt := range []struct {
		stream  string
		want    codes.Code
		replies int
	}{
		{"two and end", codes.OK, 2},
		{"none and end", codes.OK, 0},
		{"error end", codes.Aborted, 1},
		{"out of order", codes.Internal, 0},
		{"repeated", codes.Internal, 1},
		{"not a response", codes.Internal, 0},
		{"never ends", codes.DeadlineExceeded, 1},
		{"after its end", codes.OK, 0},
		{"unnumbered reply", codes.Internal, 0},
		{"two and end", codes.OK, 2}, // and the gateway keeps serving
	} {
		t.Run(tt.stream, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(warrentest.Ctx(t), 500*time.Millisecond)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "stream", tt.stream)
			got, err := stocktake(ctx, t, client, "tea")
			if status.Code(err) != tt.want || len(got) != tt.replies {
				t.Errorf("%s: %d replies, %v; want %d replies and %v", tt.stream, len(got), err, tt.replies, tt.want)
			}
		})
	}
}
