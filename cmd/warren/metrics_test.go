package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// startCommand runs a warren command in this process, with the
// environment env and no other; stop cancels it and returns its error.
func startCommand(t *testing.T, env map[string]string, args ...string) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var (
		wg  sync.WaitGroup
		err error
	)
	wg.Go(func() { err = runEnv(ctx, args, lookup, &bytes.Buffer{}, &lockedBuffer{}) })
	var once sync.Once
	stop = func() error {
		once.Do(func() { cancel(); wg.Wait() })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// scrape fetches url's body; it fails the test unless the answer is want.
func scrape(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d", url, resp.Status, want)
	}
	return string(b)
}

// sample is the value of one series in the text exposition format.
func sample(body, series string) (float64, bool) {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// waitClosed waits until nothing listens on addr.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, "the metrics server closed", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	})
}

// TestDevServesMetrics: warren dev --metrics-listen serves /metrics, with
// the gRPC call and the worker's delivery counted after a fib call, no
// profiles without --pprof, and stops serving with the command.
func TestDevServesMetrics(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	addr, maddr := freeAddr(t), freeAddr(t)
	ents := newEntities(t)
	stop := startCommand(t, nil, append([]string{"dev", "--listen", addr, "--metrics-listen", maddr, "--amqp-url", url, "--log-level", "error"}, ents.flags()...)...)
	waitServing(t, addr)
	// A fib answer needs the Fibonacci worker; the tasks worker on the
	// same connection may still be setting up.
	waitFor(t, "the workers' connection up", func() bool {
		v, ok := sample(scrape(t, "http://"+maddr+"/metrics", http.StatusOK), `warren_amqp_connection_up{connection="warren-worker"}`)
		return ok && v == 1
	})
	before, _ := sample(scrape(t, "http://"+maddr+"/metrics", http.StatusOK),
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Fibonacci",grpc_service="warren.v1.FibonacciService",grpc_type="unary"}`)
	if got, err := call("fib", "--addr", addr, "30"); err != nil || got != "832040\n" {
		t.Fatalf("warren fib 30 = %q, %v", got, err)
	}

	body := scrape(t, "http://"+maddr+"/metrics", http.StatusOK)
	tests := []struct {
		series string
		want   func(float64) bool
		what   string
	}{
		{`grpc_server_handled_total{grpc_code="OK",grpc_method="Fibonacci",grpc_service="warren.v1.FibonacciService",grpc_type="unary"}`,
			func(v float64) bool { return v == before+1 }, "one more than before the call"},
		{`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Fibonacci",grpc_service="warren.v1.FibonacciService",grpc_type="unary"}`,
			func(v float64) bool { return v == 0 }, "0 (initialized)"},
		{`warren_amqp_published_total{exchange="",queue="` + ents.rpcQueue + `"}`, func(v float64) bool { return v >= 1 }, "at least 1"},
		{`warren_worker_handled_total{code="OK",queue="` + ents.rpcQueue + `"}`, func(v float64) bool { return v >= 1 }, "at least 1"},
		{`warren_amqp_connection_up{connection="warren-gateway"}`, func(v float64) bool { return v == 1 }, "1"},
		{`warren_amqp_connection_up{connection="warren-worker"}`, func(v float64) bool { return v == 1 }, "1"},
	}
	for _, tt := range tests {
		if v, ok := sample(body, tt.series); !ok || !tt.want(v) {
			t.Errorf("%s = %v (found: %v), want %s", tt.series, v, ok, tt.what)
		}
	}
	scrape(t, "http://"+maddr+"/debug/pprof/", http.StatusNotFound)

	if err := stop(); err != nil {
		t.Fatalf("warren dev: %v", err)
	}
	waitClosed(t, maddr)
}

// TestWorkerMetricsFromTheEnvironment: WARREN_METRICS_LISTEN and
// WARREN_PPROF turn the metrics and the profiles on for warren worker.
func TestWorkerMetricsFromTheEnvironment(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	maddr := freeAddr(t)
	ents := newEntities(t)
	env := map[string]string{"WARREN_METRICS_LISTEN": maddr, "WARREN_PPROF": "true", "WARREN_AMQP_URL": url, "WARREN_LOG_LEVEL": "error"}
	stop := startCommand(t, env, "worker", "--rpc-queue", ents.rpcQueue, "--task-queue", ents.taskQueue, "--events-exchange", ents.events)
	waitFor(t, "the worker connected", func() bool {
		resp, err := http.Get("http://" + maddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		v, ok := sample(string(b), `warren_amqp_connection_up{connection="warren-worker"}`)
		return ok && v == 1
	})
	if !strings.Contains(scrape(t, "http://"+maddr+"/debug/pprof/", http.StatusOK), "goroutine") {
		t.Error("/debug/pprof/ does not list the goroutine profile")
	}
	if err := stop(); err != nil {
		t.Fatalf("warren worker: %v", err)
	}
	waitClosed(t, maddr)
}

func TestPprofNeedsMetricsListen(t *testing.T) {
	t.Parallel()
	_, stderr, err := runCLI(t, nil, "gateway", "--pprof")
	if exitCode(err) != 2 || !strings.Contains(stderr, "--pprof serves the profiles on --metrics-listen") {
		t.Fatalf("warren gateway --pprof: exit %d, %q; want a usage error", exitCode(err), stderr)
	}
}
