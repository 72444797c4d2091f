package gateway

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
)

// accessLog writes one line per gRPC call to log, once the call ended:
//
//	level=INFO msg=call method=/warren.v1.FibonacciService/Fibonacci code=OK duration=1.2ms peer=127.0.0.1:40112 correlation_id=…
//
// with the status code the caller got (its interceptors run outside the
// error boundary), the status message when it is not OK, the principal
// when principal is set and finds one, and what the core noted on the call
// (core.NoteCall: a correlation id, a task id). Health checks are logged
// at debug level: probes would drown the calls.
type accessLog struct {
	log       *slog.Logger
	principal func(context.Context) string
}

func (a *accessLog) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, ci := core.WithCallInfo(ctx)
	resp, err := h(ctx, req)
	a.write(ctx, info.FullMethod, start, err, ci)
	return resp, err
}

func (a *accessLog) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	ctx, ci := core.WithCallInfo(ss.Context())
	err := h(srv, &serverStream{ServerStream: ss, ctx: ctx})
	a.write(ctx, info.FullMethod, start, err, ci)
	return err
}

func (a *accessLog) write(ctx context.Context, method string, start time.Time, err error, ci *core.CallInfo) {
	d := time.Since(start)
	level := slog.LevelInfo
	if strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		level = slog.LevelDebug
	}
	if !a.log.Enabled(ctx, level) {
		return
	}
	st := status.Convert(err)
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs,
		slog.String("method", method),
		slog.String("code", st.Code().String()),
		slog.Duration("duration", d),
	)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	if a.principal != nil {
		if who := a.principal(ctx); who != "" {
			attrs = append(attrs, slog.String("principal", who))
		}
	}
	attrs = append(attrs, ci.Attrs()...)
	if st.Code() != codes.OK {
		attrs = append(attrs, slog.String("error", st.Message()))
	}
	a.log.LogAttrs(ctx, level, "call", attrs...)
}
