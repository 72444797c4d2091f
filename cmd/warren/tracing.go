package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/warrenrpc/warren/core"
)

// tracingShutdownTimeout bounds the flush of the spans still buffered
// when a server command ends.
const tracingShutdownTimeout = 5 * time.Second

// trace sets up the OpenTelemetry traces of a server command (gateway,
// worker, dev) as the standard OTEL_* environment asks, and makes f's
// broker configurations carry them (core.Config.Tracing). stop flushes the
// buffered spans and shuts the exporters down: call it when the command's
// gateway and workers have stopped. service is the default service.name
// (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it). Spans on
// the console exporter go to stdout, one JSON object a line.
func (f *amqpFlags) trace(ctx context.Context, service string, stdout io.Writer, log *slog.Logger) (stop func(), err error) {
	t, stop, err := startTracing(ctx, service, os.Getenv, stdout, log)
	if err != nil {
		return nil, err
	}
	f.tracing = t
	return stop, nil
}

// startTracing builds the tracer provider getenv's OTEL_* variables ask
// for. Tracing is off (the zero core.Tracing, which costs nothing) unless
// OTEL_TRACES_EXPORTER names an exporter or an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, which
// mean "otlp"); OTEL_SDK_DISABLED=true turns it off whatever else is set.
//
//   - OTEL_TRACES_EXPORTER: a comma-separated list of otlp, console and
//     none.
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL:
//     http/protobuf (the default) or grpc. The exporters read their other
//     OTEL_EXPORTER_OTLP_* variables (endpoint, headers, TLS, timeout)
//     themselves.
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (the SDK reads
//     them; default parentbased_always_on), OTEL_BSP_* (the batch span
//     processor), OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
//
// Propagation is always W3C trace context and baggage (the wire
// contract); OTEL_PROPAGATORS is not read.
func startTracing(ctx context.Context, service string, getenv func(string) string, stdout io.Writer, log *slog.Logger) (core.Tracing, func(), error) {
	exporters, names, err := traceExporters(ctx, getenv, stdout)
	if err != nil || len(exporters) == 0 {
		return core.Tracing{}, func() {}, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: after the default, to override it
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES: res still holds the rest.
		log.Warn("tracing: resource", "err", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	svc, _ := res.Set().Value(semconv.ServiceNameKey)
	log.Info("tracing on", "exporters", strings.Join(names, ","), "service", svc.AsString())
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: flush spans", "err", err)
		}
	}
	return core.Tracing{Provider: tp}, stop, nil
}

// traceExporters builds the span exporters getenv asks for, and their
// names; none when tracing is off.
func traceExporters(ctx context.Context, getenv func(string) string, stdout io.Writer) ([]sdktrace.SpanExporter, []string, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil, nil
	}
	list := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	if list == "" {
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, nil, nil
		}
		list = "otlp"
	}
	var exporters []sdktrace.SpanExporter
	var names []string
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		var e sdktrace.SpanExporter
		var err error
		switch name {
		case "none", "":
			continue
		case "console":
			e, err = stdouttrace.New(stdouttrace.WithWriter(stdout))
		case "otlp":
			e, err = otlpExporter(ctx, getenv)
			if e != nil {
				name += "/" + otlpProtocol(getenv)
			}
		default:
			err = usagef("$OTEL_TRACES_EXPORTER: unknown exporter %q (want otlp, console or none)", name)
		}
		if err != nil {
			for _, e := range exporters {
				_ = e.Shutdown(ctx)
			}
			return nil, nil, err
		}
		exporters = append(exporters, e)
		names = append(names, name)
	}
	return exporters, names, nil
}

// otlpProtocol is the OTLP protocol getenv asks for traces.
func otlpProtocol(getenv func(string) string) string {
	if p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")); p != "" {
		return p
	}
	if p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")); p != "" {
		return p
	}
	return "http/protobuf"
}

// otlpExporter is the OTLP span exporter of the protocol getenv asks for.
// It connects lazily: an unreachable collector costs dropped spans and a
// logged error, never a failed command.
func otlpExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	switch p := otlpProtocol(getenv); p {
	case "http/protobuf":
		e, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP/HTTP trace exporter: %w", err)
		}
		return e, nil
	case "grpc":
		e, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP/gRPC trace exporter: %w", err)
		}
		return e, nil
	default:
		return nil, usagef("$OTEL_EXPORTER_OTLP_PROTOCOL: unsupported OTLP protocol %q (want http/protobuf or grpc)", p)
	}
}
