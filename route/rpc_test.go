package route_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/examples/inventory/store"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/internal/wire"
	"github.com/warrenrpc/warren/route"
	"github.com/warrenrpc/warren/worker"
)

// startInventory serves the example's InventoryService on a gateway from
// a descriptor set, with its queues under prefix.
func startInventory(t testing.TB, prefix string) (*warrentest.Gateway, inventoryv1.InventoryServiceClient) {
	t.Helper()
	svcs, err := route.NewServices(route.Config{Prefix: prefix, PresenceInterval: 50 * time.Millisecond},
		warrentest.DescriptorSet(t, inventoryv1.File_inventory_v1_inventory_proto))
	if err != nil {
		t.Fatal(err)
	}
	var gs []gateway.Service
	for _, s := range svcs {
		gs = append(gs, s)
	}
	gw := warrentest.StartGateway(t, gateway.Config{}, gs...)
	return gw, inventoryv1.NewInventoryServiceClient(gw.Conn)
}

// startStore serves a store.Store on warren's worker SDK.
func startStore(t *testing.T, prefix string, items ...*inventoryv1.Item) {
	t.Helper()
	srv := worker.NewServer(worker.ServerConfig{Prefix: prefix})
	inventoryv1.RegisterInventoryServiceServer(srv, store.New(items...))
	warrentest.StartWorkers(t, worker.Config{}, srv)
}

func tea(stock uint32) *inventoryv1.Item {
	return &inventoryv1.Item{Sku: "tea", Name: "Green tea, 100 g", Stock: stock}
}

func TestRPCRouteThroughGatewayAndSDKWorker(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	gw, client := startInventory(t, prefix)
	startStore(t, prefix, tea(5))
	waitServing(t, gw, "inventory.v1.InventoryService")
	ctx := warrentest.Ctx(t)

	exerciseInventory(t, client)
	t.Run("a method without a route is UNIMPLEMENTED", func(t *testing.T) {
		_, err := client.Audit(ctx, &inventoryv1.AuditRequest{})
		warrentest.WantCode(t, err, codes.Unimplemented)
	})
}

func TestRPCRouteWithoutWorkerIsUnavailableAtOnce(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	gw, client := startInventory(t, prefix)
	start := time.Now()
	_, err := client.GetItem(warrentest.Ctx(t), &inventoryv1.GetItemRequest{Sku: "tea"})
	warrentest.WantCode(t, err, codes.Unavailable)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("UNAVAILABLE after %v, want at once", d)
	}
	r, err := healthpb.NewHealthClient(gw.Conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "inventory.v1.InventoryService"})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health = %v, %v; want NOT_SERVING with no worker", r, err)
	}
}

// TestRPCRouteForeignWorkerReplies: what a worker in any language gets,
// and what it may send back, right and wrong, in both codecs: Reserve's
// messages travel as protobuf, GetItem's as JSON.
func TestRPCRouteForeignWorkerReplies(t *testing.T) {
	t.Parallel()
	prefix := queuePrefix(t)
	gw, client := startInventory(t, prefix)
	pb, _ := proto.Marshal(&inventoryv1.ReserveResponse{ReservationId: "r9", Left: 1})
	js := []byte(`{"item": {"sku": "tea", "name": "Green tea, 100 g", "stock": 1}}`)
	errorReply := amqp.Publishing{Headers: wire.ErrorHeaders(codes.PermissionDenied, "not yours"), Body: []byte("error")}
	replies := map[string]map[string]amqp.Publishing{
		reserveQueue: {
			"good":          {ContentType: wire.ContentTypeProtobuf, Type: "inventory.v1.ReserveResponse", Body: pb},
			"untyped":       {Body: pb},
			"wrong type":    {ContentType: wire.ContentTypeProtobuf, Type: "inventory.v1.Item", Body: pb},
			"wrong content": {ContentType: wire.ContentTypeJSON, Body: []byte(`{"left":1}`)},
			"garbage":       {ContentType: wire.ContentTypeProtobuf, Body: []byte{0xff, 0xff, 0xff}},
			"error":         errorReply,
		},
		getItemQueue: {
			"good":          {ContentType: wire.ContentTypeJSON, Type: "inventory.v1.GetItemResponse", Body: js},
			"untyped":       {Body: js},
			"wrong type":    {ContentType: wire.ContentTypeJSON, Type: "inventory.v1.Item", Body: js},
			"wrong content": {ContentType: wire.ContentTypeProtobuf, Body: pb},
			"garbage":       {ContentType: wire.ContentTypeJSON, Body: []byte(`{"item": {"stock": "many"}}`)},
			"error":         errorReply,
		},
	}
	requests := make(chan amqp.Delivery, 16)
	for _, q := range []string{reserveQueue, getItemQueue} {
		warrentest.FakeWorker(t, prefix+q, func(ch *amqp.Channel, d amqp.Delivery) {
			requests <- d
			reply, _ := d.Headers[wire.HeaderMetadataPrefix+"reply"].(string)
			p := replies[q][reply]
			p.CorrelationId = d.CorrelationId
			warrentest.Reply(t, ch, d, p)
		})
	}
	// Stocktake's worker is there for health only: the service is
	// SERVING when every rpc and stream route has one.
	warrentest.FakeWorker(t, prefix+stocktakeQueue, func(*amqp.Channel, amqp.Delivery) {})
	waitServing(t, gw, "inventory.v1.InventoryService")
	for _, method := range []struct {
		queue       string
		call        func(context.Context) (proto.Message, error)
		want        proto.Message
		contentType string
		request     func([]byte) (proto.Message, error)
	}{
		{
			reserveQueue,
			func(ctx context.Context) (proto.Message, error) {
				return client.Reserve(ctx, &inventoryv1.ReserveRequest{Sku: "tea", Count: 1})
			},
			&inventoryv1.ReserveResponse{ReservationId: "r9", Left: 1},
			wire.ContentTypeProtobuf,
			func(b []byte) (proto.Message, error) {
				var req inventoryv1.ReserveRequest
				return &req, proto.Unmarshal(b, &req)
			},
		},
		{
			getItemQueue,
			func(ctx context.Context) (proto.Message, error) {
				return client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "tea"})
			},
			&inventoryv1.GetItemResponse{Item: tea(1)},
			wire.ContentTypeJSON,
			func(b []byte) (proto.Message, error) {
				var req inventoryv1.GetItemRequest
				return &req, protojson.Unmarshal(b, &req)
			},
		},
	} {
		for _, tt := range []struct {
			reply string
			want  codes.Code
		}{
			{"good", codes.OK}, {"untyped", codes.OK}, {"wrong type", codes.Internal},
			{"wrong content", codes.Internal}, {"garbage", codes.Internal}, {"error", codes.PermissionDenied},
			{"good", codes.OK}, // and the gateway keeps serving
		} {
			t.Run(method.queue+"/"+tt.reply, func(t *testing.T) {
				ctx := metadata.AppendToOutgoingContext(warrentest.Ctx(t), "reply", tt.reply)
				got, err := method.call(ctx)
				if status.Code(err) != tt.want {
					t.Fatalf("a %s reply = %v, %v; want %v", tt.reply, got, err, tt.want)
				}
				if tt.want == codes.OK && !proto.Equal(got, method.want) {
					t.Errorf("got %v, want %v", got, method.want)
				}
				d := <-requests
				if d.ContentType != method.contentType || d.Type == "" || d.ReplyTo == "" || d.CorrelationId == "" {
					t.Errorf("request properties: content type %q (want %s), type %q, reply_to %q, correlation id %q",
						d.ContentType, method.contentType, d.Type, d.ReplyTo, d.CorrelationId)
				}
				if req, err := method.request(d.Body); err != nil {
					t.Errorf("request body %q: %v, %v", d.Body, req, err)
				}
				callDeadline, _ := ctx.Deadline()
				if got, ok := wire.Deadline(d.Headers); !ok || got.Sub(callDeadline).Abs() > time.Second {
					t.Errorf("deadline header %v, %v; want the call's, %v", got, ok, callDeadline)
				}
			})
		}
	}
}

// waitServing waits until the gateway's health says service is SERVING.
func waitServing(t *testing.T, gw *warrentest.Gateway, service string) {
	t.Helper()
	warrentest.Eventually(t, 10*time.Second, service+" SERVING", func() bool {
		r, err := healthpb.NewHealthClient(gw.Conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
}

// TestReflectionServesTheLoadedDescriptorsWithComments: with no .proto
// file on the client's side, reflection describes a routed service, with
// the comments its descriptor set holds.
func TestReflectionServesTheLoadedDescriptorsWithComments(t *testing.T) {
	t.Parallel()
	fdp := protodesc.ToFileDescriptorProto(inventoryv1.File_inventory_v1_inventory_proto)
	const comment = " InventoryService keeps the stock of a shop's items.\n"
	// Path 6, 0: the file's first service, as buf build records it.
	fdp.SourceCodeInfo = &descriptorpb.SourceCodeInfo{Location: []*descriptorpb.SourceCodeInfo_Location{
		{Path: []int32{6, 0}, Span: []int32{7, 0, 30, 1}, LeadingComments: proto.String(comment)},
	}}
	set := &descriptorpb.FileDescriptorSet{}
	for _, dep := range []protoreflect.FileDescriptor{descriptorpb.File_google_protobuf_descriptor_proto, durationpb.File_google_protobuf_duration_proto, timestamppb.File_google_protobuf_timestamp_proto, warrenv1.File_warren_v1_options_proto} {
		set.File = append(set.File, protodesc.ToFileDescriptorProto(dep))
	}
	set.File = append(set.File, fdp)
	svcs, err := route.NewServices(route.Config{Prefix: queuePrefix(t)}, warrentest.WriteProto(t, set))
	if err != nil {
		t.Fatal(err)
	}
	gw := warrentest.StartGateway(t, gateway.Config{}, svcs[0])
	files := warrentest.ReflectFile(t, gw.Conn, "inventory.v1.InventoryService")
	d, err := files.FindDescriptorByName("inventory.v1.InventoryService")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.ParentFile().SourceLocations().ByDescriptor(d).LeadingComments; got != comment {
		t.Errorf("comment served %q, want %q", got, comment)
	}
	if m := d.(protoreflect.ServiceDescriptor).Methods().ByName("Reserve"); m == nil || m.Input().FullName() != "inventory.v1.ReserveRequest" {
		t.Errorf("Reserve served as %v", m)
	}
}
