package gateway

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// security puts Config.Auth's interceptors in front of the gateway's own
// (so inside the metrics', which New puts in front of everything) and
// returns the server options of Config.TLS.
func (c Config) security(unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor, []grpc.ServerOption) {
	var opts []grpc.ServerOption
	if c.TLS != nil {
		opts = append(opts, grpc.Creds(lingerCreds{credentials.NewTLS(c.TLS)}))
	}
	if c.Auth != nil {
		unary = append([]grpc.UnaryServerInterceptor{c.Auth.UnaryServerInterceptor()}, unary...)
		stream = append([]grpc.StreamServerInterceptor{c.Auth.StreamServerInterceptor()}, stream...)
	}
	return unary, stream, opts
}
