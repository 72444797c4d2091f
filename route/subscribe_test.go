package route_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
)

// watch subscribes with keys and waits for the header that says the
// queue is bound.
func watch(t *testing.T, client inventoryv1.InventoryServiceClient, keys ...string) grpc.ServerStreamingClient[inventoryv1.StockLevel] {
	t.Helper()
	stream, err := watchFrom(warrentest.Ctx(t), client, &inventoryv1.WatchLevelsRequest{BindingKeys: keys})
	if err != nil {
		t.Fatalf("WatchLevels%v: %v", keys, err)
	}
	return stream
}

// watchFrom calls WatchLevels with req and waits for the header that says
// the subscription is bound; an error is the call's status.
func watchFrom(ctx context.Context, client inventoryv1.InventoryServiceClient, req *inventoryv1.WatchLevelsRequest) (grpc.ServerStreamingClient[inventoryv1.StockLevel], error) {
	stream, err := client.WatchLevels(ctx, req)
	if err != nil {
		return nil, err
	}
	h, err := stream.Header()
	if err != nil {
		return nil, err
	}
	if len(h.Get(wire.HeaderQueue)) != 1 {
		_, err := stream.Recv() // the status of a call that ended first
		if err == nil {
			err = fmt.Errorf("header %v, want %s", h, wire.HeaderQueue)
		}
		return nil, err
	}
	return stream, nil
}

// reportLevels reports three stock levels through the event route:
// tea.LEVEL_LOW, coffee.LEVEL_OUT and tea.LEVEL_OUT, in that order.
func reportLevels(t *testing.T, client inventoryv1.InventoryServiceClient) []*inventoryv1.StockLevel {
	t.Helper()
	levels := []*inventoryv1.StockLevel{
		{Sku: "tea", Level: inventoryv1.StockLevel_LEVEL_LOW, Stock: 2},
		{Sku: "coffee", Level: inventoryv1.StockLevel_LEVEL_OUT},
		{Sku: "tea", Level: inventoryv1.StockLevel_LEVEL_OUT},
	}
	for _, l := range levels {
		if _, err := client.ReportLevel(warrentest.Ctx(t), l); err != nil {
			t.Fatal(err)
		}
	}
	return levels
}

func TestSubscribeRouteStreamsWhatTheEventRoutePublishes(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	teaOnly := watch(t, client, "tea.*")
	outOnly := watch(t, client, "*.LEVEL_OUT")

	levels := reportLevels(t, client)
	for _, tt := range []struct {
		name   string
		stream grpc.ServerStreamingClient[inventoryv1.StockLevel]
		want   []*inventoryv1.StockLevel
	}{
		{"tea.*", teaOnly, []*inventoryv1.StockLevel{levels[0], levels[2]}},
		{"*.LEVEL_OUT", outOnly, []*inventoryv1.StockLevel{levels[1], levels[2]}},
	} {
		for i, want := range tt.want {
			got, err := tt.stream.Recv()
			if err != nil {
				t.Fatalf("%s: message %d: %v", tt.name, i, err)
			}
			if got.Offset == nil {
				t.Errorf("%s: message %d has no offset (the route keeps a history)", tt.name, i)
			}
			got.Offset = nil
			if !proto.Equal(got, want) {
				t.Errorf("%s: message %d = %v, want %v", tt.name, i, got, want)
			}
		}
	}
}

// TestSubscribeRouteSkipsWhatIsNotItsResponse: a foreign publisher's
// message that cannot be a StockLevel is skipped; the stream goes on.
func TestSubscribeRouteSkipsWhatIsNotItsResponse(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	stream := watch(t, client, "#")
	ch := brokertest.Channel(t)
	good, _ := proto.Marshal(&inventoryv1.StockLevel{Sku: "tea", Stock: 1})
	for _, p := range []amqp.Publishing{
		{Type: "inventory.v1.Item", Body: good},
		{ContentType: "application/json", Body: []byte(`{"sku":"tea"}`)},
		{Body: []byte{0xff, 0xff, 0xff}},
		{ContentType: wire.ContentTypeProtobuf, Type: "inventory.v1.StockLevel", Body: good},
	} {
		if err := ch.PublishWithContext(context.Background(), prefix+eventsExchange, "tea.x", false, false, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := stream.Recv()
	if err != nil || got.GetSku() != "tea" || got.GetStock() != 1 {
		t.Fatalf("Recv = %v, %v; want the one StockLevel", got, err)
	}
}

func TestSubscribeRouteRefusesBadKeys(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	for name, keys := range map[string][]string{
		"none":            nil,
		"mixed wildcards": {"tea*.x"},
		"too long":        {string(make([]byte, 256))},
	} {
		stream, err := client.WatchLevels(warrentest.Ctx(t), &inventoryv1.WatchLevelsRequest{BindingKeys: keys})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("WatchLevels with %s keys: %v, want INVALID_ARGUMENT", name, err)
		}
	}
}

// TestSubscribeRouteHistory: a subscribe route with a history (the
// example's WatchLevels) sets each message's offset in the response's
// offset field, starts a call at the request's start_offset or
// start_time, and says why when it cannot.
func TestSubscribeRouteHistory(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	_, client := startInventory(t, prefix)
	ctx := warrentest.Ctx(t)
	live := watch(t, client, "#")
	levels := reportLevels(t, client)
	var offsets []int64
	for i, want := range levels {
		got, err := live.Recv()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got.Offset == nil {
			t.Fatalf("message %d has no offset: %v", i, got)
		}
		offsets = append(offsets, got.GetOffset())
		got.Offset = nil
		if !proto.Equal(got, want) {
			t.Errorf("message %d = %v, want %v", i, got, want)
		}
	}

	from := func(req *inventoryv1.WatchLevelsRequest) (grpc.ServerStreamingClient[inventoryv1.StockLevel], error) {
		return watchFrom(ctx, client, req)
	}
	// From coffee's offset, with tea.*: the tea that came after it.
	s, err := from(&inventoryv1.WatchLevelsRequest{BindingKeys: []string{"tea.*"}, StartOffset: proto.Int64(offsets[1])})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetOffset() != offsets[2] || got.GetLevel() != inventoryv1.StockLevel_LEVEL_OUT || got.GetSku() != "tea" {
		t.Fatalf("from offset %d: %v, want tea out at offset %d", offsets[1], got, offsets[2])
	}
	// From a time before them all: all three, after what the worker
	// reported when it started.
	s, err = from(&inventoryv1.WatchLevelsRequest{BindingKeys: []string{"#"}, StartTime: timestamppb.New(time.Now().Add(-time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(levels); {
		got, err := s.Recv()
		if err != nil {
			t.Fatalf("from a minute ago: %v", err)
		}
		if got.GetOffset() < offsets[0] {
			continue
		}
		if got.GetOffset() != offsets[i] {
			t.Fatalf("from a minute ago, message %d: %v, want offset %d", i, got, offsets[i])
		}
		i++
	}

	for _, tt := range []struct {
		name string
		req  *inventoryv1.WatchLevelsRequest
		want codes.Code
		msg  string
	}{
		{"negative offset", &inventoryv1.WatchLevelsRequest{BindingKeys: []string{"#"}, StartOffset: proto.Int64(-1)}, codes.InvalidArgument, "start_offset -1 is negative"},
		{"offset and time", &inventoryv1.WatchLevelsRequest{BindingKeys: []string{"#"}, StartOffset: proto.Int64(0), StartTime: timestamppb.Now()}, codes.InvalidArgument, "start_offset and start_time are both set"},
		{"offset past the end", &inventoryv1.WatchLevelsRequest{BindingKeys: []string{"#"}, StartOffset: proto.Int64(offsets[2] + 5)}, codes.OutOfRange, "past the end of the history"},
		{"time before 1970", &inventoryv1.WatchLevelsRequest{BindingKeys: []string{"#"}, StartTime: &timestamppb.Timestamp{Seconds: -10}}, codes.OutOfRange, "before 1970"},
		{"bad nanos", &inventoryv1.WatchLevelsRequest{BindingKeys: []string{"#"}, StartTime: &timestamppb.Timestamp{Nanos: -1}}, codes.InvalidArgument, "nanos -1"},
	} {
		_, err := from(tt.req)
		if st := status.Convert(err); st.Code() != tt.want || !strings.Contains(st.Message(), tt.msg) {
			t.Errorf("%s: %v, want %v with %q", tt.name, err, tt.want, tt.msg)
		}
	}
}
