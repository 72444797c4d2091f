package metrics

import (
	"context"
	"sync"
	"sync/atomic"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
)

// otherMethod is the gRPC method a call to a method no service registered
// is counted under: grpc_service and grpc_method "_OTHER".
const otherMethod = "/_OTHER/_OTHER"

// grpcMetrics are the gRPC server metrics of go-grpc-middleware's
// Prometheus provider (grpc_server_started_total,
// grpc_server_handled_total, grpc_server_handling_seconds, ...), counted
// only under the methods the servers registered.
type grpcMetrics struct {
	server *grpcprom.ServerMetrics
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor

	mu      sync.Mutex
	methods atomic.Pointer[map[string]struct{}] // full method names; copied on write
}

func newGRPCMetrics() *grpcMetrics {
	server := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	g := &grpcMetrics{server: server, unary: server.UnaryServerInterceptor(), stream: server.StreamServerInterceptor()}
	g.methods.Store(&map[string]struct{}{})
	return g
}

// known reports whether a server registered method.
func (g *grpcMetrics) known(method string) bool {
	_, ok := (*g.methods.Load())[method]
	return ok
}

// InitializeServer makes the methods of every service registered on srv
// the ones the gRPC metrics count under (any other is counted as
// _OTHER), and creates their series at zero. Call it after the services
// are registered and before srv serves; gateway.New does.
func (m *Metrics) InitializeServer(srv *grpc.Server) {
	g := m.grpc
	g.mu.Lock()
	next := map[string]struct{}{}
	for method := range *g.methods.Load() {
		next[method] = struct{}{}
	}
	for service, info := range srv.GetServiceInfo() {
		for _, method := range info.Methods {
			next["/"+service+"/"+method.Name] = struct{}{}
		}
	}
	g.methods.Store(&next)
	g.mu.Unlock()
	g.server.InitializeMetrics(srv)
}

// UnaryServerInterceptor counts unary calls in the gRPC server metrics.
// grpc-go runs interceptors only for registered methods, unless the
// server has an UnknownServiceHandler: a call to any other method is
// counted as _OTHER, so that the series stay bounded.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	g := m.grpc
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !g.known(info.FullMethod) {
			info = &grpc.UnaryServerInfo{Server: info.Server, FullMethod: otherMethod}
		}
		return g.unary(ctx, req, info, handler)
	}
}

// StreamServerInterceptor counts streaming calls in the gRPC server
// metrics, as UnaryServerInterceptor counts unary ones.
func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	g := m.grpc
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !g.known(info.FullMethod) {
			info = &grpc.StreamServerInfo{FullMethod: otherMethod, IsClientStream: info.IsClientStream, IsServerStream: info.IsServerStream}
		}
		return g.stream(srv, ss, info, handler)
	}
}
