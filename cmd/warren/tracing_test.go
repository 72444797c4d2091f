package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestTraceExporters: which exporters the OTEL_* environment asks for.
// Tracing is off unless an exporter or an OTLP endpoint is named.
func TestTraceExporters(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		env     map[string]string
		want    []string
		wantErr string
	}{
		{name: "nothing set"},
		{name: "none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, want: []string{"console"}},
		{name: "otlp default protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: []string{"otlp/http/protobuf"}},
		{name: "an endpoint means otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, want: []string{"otlp/http/protobuf"}},
		{name: "a traces endpoint means otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, want: []string{"otlp/http/protobuf"}},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: []string{"otlp/grpc"}},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, want: []string{"otlp/http/protobuf"}},
		{name: "a list", env: map[string]string{"OTEL_TRACES_EXPORTER": "console, otlp"}, want: []string{"console", "otlp/http/protobuf"}},
		{name: "disabled", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}},
		{name: "not disabled", env: map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "console"}, want: []string{"console"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "console,zipkin"}, wantErr: `unknown exporter "zipkin"`},
		{name: "unknown protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: `unsupported OTLP protocol "http/json"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			exporters, names, err := traceExporters(context.Background(), func(k string) string { return tt.env[k] }, &bytes.Buffer{})
			for _, e := range exporters {
				_ = e.Shutdown(context.Background())
			}
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != 2 {
					t.Fatalf("got %v (exit %d), want a usage error with %q", err, exitCode(err), tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case !slices.Equal(names, tt.want) || len(exporters) != len(tt.want):
				t.Fatalf("got exporters %q (%d), want %q", names, len(exporters), tt.want)
			}
		})
	}
}

// TestStartTracingConsole: the console exporter writes every span to
// stdout when the provider stops, with the service name OTEL_SERVICE_NAME
// gives, and tracing is off with no exporter.
func TestStartTracingConsole(t *testing.T) {
	t.Parallel()
	env := map[string]string{"OTEL_TRACES_EXPORTER": "console"}
	var out bytes.Buffer
	tr, stop, err := startTracing(context.Background(), "warren-test", func(k string) string { return env[k] }, &out, warrentest.QuietLog)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracing is off, want on")
	}
	_, span := tr.Provider.Tracer("test").Start(context.Background(), "one")
	span.End()
	stop()
	var got struct {
		Name     string
		Resource []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout %q: %v", out.String(), err)
	}
	service := ""
	for _, kv := range got.Resource {
		if kv.Key == "service.name" {
			service, _ = kv.Value.Value.(string)
		}
	}
	if got.Name != "one" || service != "warren-test" {
		t.Errorf("span %q of service %q, want one of warren-test", got.Name, service)
	}

	tr, stop, err = startTracing(context.Background(), "warren-test", func(string) string { return "" }, &out, warrentest.QuietLog)
	stop()
	if err != nil || tr.Enabled() {
		t.Errorf("with no OTEL_* variable: enabled %v, %v; want off", tr.Enabled(), err)
	}
}

// consoleSpan is what the tests read of a span the console exporter wrote.
type consoleSpan struct {
	Name        string
	SpanKind    int
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Links       []struct {
		SpanContext struct{ TraceID, SpanID string }
	}
	Status struct{ Code string }
}

// TestDevTracesAFibCall runs the binary as the README's walkthrough does:
// warren dev with OTEL_TRACES_EXPORTER=console, one fib call, SIGTERM.
// Every Fibonacci call is one trace on stdout: the gateway's server span
// and the worker's process span, its child (the reply carries no context
// back: the server span has no link).
func TestDevTracesAFibCall(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	bin := binary(t)
	addr := freeAddr(t)
	ents := newEntities(t)
	cmd := exec.Command(bin, append([]string{"dev", "--listen", addr, "--amqp-url", url}, ents.flags()...)...)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=console", "OTEL_SDK_DISABLED=", "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitServing(t, addr)
	t.Logf("serving after %v", time.Since(start))
	if out, err := call("fib", "--addr", addr, "10"); err != nil || !strings.Contains(out, "55") {
		t.Fatalf("warren fib 10: %q, %v", out, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("warren dev exited with %v\n%s", err, stderr.String())
		}
		t.Logf("stopped after %v", time.Since(start))
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("warren dev did not stop within 20s of SIGTERM\n%s", stderr.String())
	}

	var spans []consoleSpan
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s consoleSpan
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		spans = append(spans, s)
	}
	find := func(name, traceID, parent string) *consoleSpan {
		for i, s := range spans {
			if s.Name == name && s.SpanContext.TraceID == traceID && s.Parent.SpanID == parent {
				return &spans[i]
			}
		}
		return nil
	}
	calls := 0
	for _, s := range spans {
		if s.Name != "warren.v1.FibonacciService/Fibonacci" || s.Status.Code == "Error" {
			continue // not a call, or one that failed before the worker was up
		}
		calls++
		process := find("process "+ents.rpcQueue, s.SpanContext.TraceID, s.SpanContext.SpanID)
		if process == nil {
			t.Errorf("trace %s: no process span under the server span", s.SpanContext.TraceID)
			continue
		}
		if len(s.Links) != 0 {
			t.Errorf("trace %s: the server span's links are %v, want none (the process span is its child)", s.SpanContext.TraceID, s.Links)
		}
	}
	if calls < 2 { // waitServing's last, and fib 10
		t.Fatalf("%d Fibonacci server spans on stdout, want at least 2:\n%s", calls, stdout.String())
	}
}
