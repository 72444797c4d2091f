package route_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/warrenrpc/warren/core"
	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/route"
)

// testFile is a file "test/v1/test.proto" with one service, Svc, whose
// methods carry routes as given: name → route (nil: no route). A method
// whose name starts with "Server" streams its responses.
func testFile(svcDefaults *warrenv1.ServiceRoute, methods map[string]*warrenv1.Route) *descriptorpb.FileDescriptorProto {
	svc := &descriptorpb.ServiceDescriptorProto{Name: proto.String("Svc"), Options: &descriptorpb.ServiceOptions{}}
	if svcDefaults != nil {
		proto.SetExtension(svc.Options, warrenv1.E_Service, svcDefaults)
	}
	for name, r := range methods {
		m := &descriptorpb.MethodDescriptorProto{
			Name: proto.String(name), InputType: proto.String(".test.v1.Msg"), OutputType: proto.String(".test.v1.Msg"),
			Options: &descriptorpb.MethodOptions{},
		}
		if strings.HasPrefix(name, "Server") {
			m.ServerStreaming = proto.Bool(true)
		}
		if r != nil {
			proto.SetExtension(m.Options, warrenv1.E_Route, r)
		}
		svc.Method = append(svc.Method, m)
	}
	return &descriptorpb.FileDescriptorProto{
		Name: proto.String("test/v1/test.proto"), Package: proto.String("test.v1"), Syntax: proto.String("proto3"),
		Dependency:  []string{"warren/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Msg")}},
		Service:     []*descriptorpb.ServiceDescriptorProto{svc},
	}
}

// setOf is a FileDescriptorSet of fd and warren's options with their
// imports.
func setOf(fd *descriptorpb.FileDescriptorProto) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	for _, f := range []string{"google/protobuf/descriptor.proto", "google/protobuf/duration.proto", "warren/v1/options.proto"} {
		d, err := protoregistry.GlobalFiles.FindFileByPath(f)
		if err != nil {
			panic(err)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(d))
	}
	set.File = append(set.File, fd)
	return set
}

func event(exchange, kind, key string) *warrenv1.Route {
	return &warrenv1.Route{Pattern: &warrenv1.Route_Event{Event: &warrenv1.Event{Exchange: exchange, Kind: kind, RoutingKey: key}}}
}

func subscribe(exchange, kind string) *warrenv1.Route {
	return &warrenv1.Route{Pattern: &warrenv1.Route_Subscribe{Subscribe: &warrenv1.Subscribe{Exchange: exchange, Kind: kind}}}
}

// withHistory is a subscription to the fanout exchange "x" with history h.
func withHistory(h *warrenv1.SubscribeHistory) *warrenv1.Route {
	r := subscribe("x", "fanout")
	r.GetSubscribe().History = h
	return r
}

// TestOneExchangeOneHistory: the subscribe routes of one exchange share
// its queue or stream, so they must agree on its history.
func TestOneExchangeOneHistory(t *testing.T) {
	t.Parallel()
	path := warrentest.WriteProto(t, setOf(testFile(nil, map[string]*warrenv1.Route{
		"ServerWatch": withHistory(&warrenv1.SubscribeHistory{}), "ServerTail": subscribe("x", "fanout"),
	})))
	_, err := route.NewServices(route.Config{}, path)
	if err == nil || !strings.Contains(err.Error(), `exchange "x" has another history in `) {
		t.Fatalf("NewServices: %v, want an error about the exchange's two histories", err)
	}
}

func rpc(queue string) *warrenv1.Route {
	return &warrenv1.Route{Pattern: &warrenv1.Route_Rpc{Rpc: &warrenv1.RPC{Queue: queue}}}
}

func TestRoutesAreReadFromTheDescriptorSet(t *testing.T) {
	t.Parallel()
	quorum := rpc("")
	classic := rpc("q.classic")
	classic.GetRpc().QueueType = warrenv1.QueueType_QUEUE_TYPE_CLASSIC
	classic.Timeout = durationpb.New(3 * time.Second)
	set := setOf(testFile(&warrenv1.ServiceRoute{Timeout: durationpb.New(7 * time.Second)}, map[string]*warrenv1.Route{
		"Default": quorum, "Classic": classic, "NoRoute": nil, "ServerFanout": subscribe("ex", "fanout"),
	}))
	files, err := route.ReadFiles(warrentest.WriteProto(t, set))
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := route.Services(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Desc.FullName() != "test.v1.Svc" {
		t.Fatalf("services %v, want test.v1.Svc alone", svcs)
	}
	got := map[string]route.Method{}
	for _, m := range svcs[0].Methods {
		got[string(m.Desc.Name())] = m
	}
	if len(got) != 3 {
		t.Errorf("routed methods %v, want Default, Classic and ServerFanout (NoRoute has none)", got)
	}
	if m := got["ServerFanout"]; m.Pattern != route.Subscribe || m.Exchange != "ex" || m.Kind != "fanout" || m.KeysField != nil {
		t.Errorf("ServerFanout: %v on %q (%s), keys field %v; want a fanout subscription needing no keys", m.Pattern, m.Exchange, m.Kind, m.KeysField)
	}
	if m := got["Default"]; m.Pattern != route.RPC || m.Queue != "test.v1.Svc.Default" || m.QueueType != core.QueueQuorum || m.Timeout != 7*time.Second {
		t.Errorf("Default: %v %q %v %v; want rpc on test.v1.Svc.Default, quorum, the service's 7s", m.Pattern, m.Queue, m.QueueType, m.Timeout)
	}
	if m := got["Classic"]; m.Queue != "q.classic" || m.QueueType != core.QueueClassic || m.Timeout != 3*time.Second || m.FullMethod() != "/test.v1.Svc/Classic" {
		t.Errorf("Classic: %q %v %v %s; want q.classic, classic, 3s", m.Queue, m.QueueType, m.Timeout, m.FullMethod())
	}
}

func TestWrongRoutesAreStartupErrorsNamingTheMethod(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		route   *warrenv1.Route
		method  string
		wantErr string
	}{
		{"rpc on a stream", rpc(""), "ServerWatch", "test.v1.Svc.ServerWatch: an rpc route needs a unary method; this one is server-streaming"},
		{"no pattern", &warrenv1.Route{}, "Get", "test.v1.Svc.Get: the route names no pattern"},
		{"broker's queue name", rpc("amq.mine"), "Get", `test.v1.Svc.Get: queue "amq.mine": names starting with amq. are the broker's`},
		{"long queue name", rpc(strings.Repeat("q", 256)), "Get", "test.v1.Svc.Get: queue name of 256 bytes"},
		{"task without an id field", &warrenv1.Route{Pattern: &warrenv1.Route_Task{Task: &warrenv1.Task{}}}, "Get", `test.v1.Svc.Get: a task route's response test.v1.Msg needs a string field "task_id"`},
		{"task on a stream", &warrenv1.Route{Pattern: &warrenv1.Route_Task{Task: &warrenv1.Task{}}}, "ServerWatch", "a task route needs a unary method"},
		{"event without an exchange", event("", "", ""), "Get", "test.v1.Svc.Get: an event route needs an exchange"},
		{"event of an unknown kind", event("x", "headers", ""), "Get", `exchange kind "headers": want topic, direct or fanout`},
		{"event key naming no field", event("x", "", "{nope}.b"), "Get", `routing_key "{nope}.b": {nope}: test.v1.Msg has no field "nope"`},
		{"event key unclosed", event("x", "", "a.{b"), "Get", `routing_key "a.{b": a { without its }`},
		{"subscribe on a unary method", subscribe("x", ""), "Get", "a subscribe route needs a server-streaming method; this one is unary"},
		{"subscribe without a keys field", subscribe("x", "topic"), "ServerWatch", `test.v1.Svc.ServerWatch: a subscribe route's request test.v1.Msg needs a string field "binding_keys"`},
		{"one exchange of two kinds", nil, "", `name the exchange "x" as `},
		{"history start field missing", withHistory(&warrenv1.SubscribeHistory{StartOffsetField: "nope"}), "ServerWatch", `test.v1.Svc.ServerWatch: the history's start_offset_field names "nope", which test.v1.Msg does not have`},
		{"history offset field missing", withHistory(&warrenv1.SubscribeHistory{OffsetField: "nope"}), "ServerWatch", `the history's offset_field names "nope", which test.v1.Msg does not have`},
		{"history max_age under a second", withHistory(&warrenv1.SubscribeHistory{MaxAge: durationpb.New(10 * time.Millisecond)}), "ServerWatch", "the history's max_age 10ms is not a duration of a second or more"},
		{"history negative size", withHistory(&warrenv1.SubscribeHistory{MaxBytes: -1}), "ServerWatch", "the history's max_bytes (-1) and segment_bytes (0) must not be negative"},
		{"history on the broker's exchange", &warrenv1.Route{Pattern: &warrenv1.Route_Subscribe{Subscribe: &warrenv1.Subscribe{Exchange: "amq.fanout", Kind: "fanout", History: &warrenv1.SubscribeHistory{}}}}, "ServerWatch", "a history needs an exchange of your own"},
		{"negative timeout", &warrenv1.Route{Pattern: rpc("").Pattern, Timeout: durationpb.New(-time.Second)}, "Get", "test.v1.Svc.Get: timeout -1s: want a positive duration"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			routes := map[string]*warrenv1.Route{tt.method: tt.route}
			if tt.route == nil {
				routes = map[string]*warrenv1.Route{"Emit": event("x", "topic", ""), "ServerWatch": subscribe("x", "fanout")}
			}
			path := warrentest.WriteProto(t, setOf(testFile(nil, routes)))
			_, err := route.NewServices(route.Config{}, path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewServices: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBadDescriptorSetsAreStartupErrorsNamingTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.binpb")
	if err := os.WriteFile(garbage, []byte("not a descriptor set\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.binpb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noImports := warrentest.WriteProto(t, &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{testFile(nil, map[string]*warrenv1.Route{"Get": rpc("")})}})
	noRoutes := warrentest.WriteProto(t, setOf(testFile(nil, map[string]*warrenv1.Route{"Get": nil})))
	for _, tt := range []struct {
		name    string
		paths   []string
		wantErr string
	}{
		{"missing file", []string{filepath.Join(dir, "missing.binpb")}, "missing.binpb: no such file"},
		{"garbage", []string{garbage}, "garbage.binpb is not a FileDescriptorSet"},
		{"empty", []string{empty}, "empty.binpb is not a FileDescriptorSet: it holds no file"},
		{"without its imports", []string{noImports}, `could not resolve import "warren/v1/options.proto"`},
		{"no routed service", []string{noRoutes}, "no service has a method with a warren route"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := route.NewServices(route.Config{}, tt.paths...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewServices(%v): %v, want an error containing %q", tt.paths, err, tt.wantErr)
			}
		})
	}
}

func TestSetsMayShareFiles(t *testing.T) {
	t.Parallel()
	a := warrentest.DescriptorSet(t, inventoryv1.File_inventory_v1_inventory_proto)
	b := warrentest.DescriptorSet(t, inventoryv1.File_inventory_v1_inventory_proto)
	svcs, err := route.NewServices(route.Config{}, a, b)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("NewServices of the same set twice: %v, %v; want the one service", svcs, err)
	}
	// The same file name with other content is an error.
	other := setOf(testFile(nil, map[string]*warrenv1.Route{"Get": rpc("")}))
	changed := setOf(testFile(nil, map[string]*warrenv1.Route{"Get": rpc("elsewhere")}))
	_, err = route.NewServices(route.Config{}, warrentest.WriteProto(t, other), warrentest.WriteProto(t, changed))
	if err == nil || !strings.Contains(err.Error(), `hold different files named "test/v1/test.proto"`) {
		t.Errorf("NewServices of two different test.proto: %v", err)
	}
	if errors.Is(err, route.ErrNoRoutes) {
		t.Errorf("error %v is ErrNoRoutes", err)
	}
}
