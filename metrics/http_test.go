package metrics_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenrpc/warren/metrics"
)

// get fetches url and returns its status code and body.
func get(t *testing.T, url string) (int, string) {
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
	return resp.StatusCode, string(b)
}

// TestServeMetricsAndPprof serves a registry with and without the
// profiles, and stops when its context ends.
func TestServeMetricsAndPprof(t *testing.T) {
	t.Parallel()
	reg := metrics.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.ReplyDropped()
	for _, withPprof := range []bool{false, true} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + lis.Addr().String()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- metrics.Serve(ctx, lis, metrics.Handler(reg, withPprof)) }()

		code, body := get(t, base+"/metrics")
		for _, want := range []string{"warren_amqp_replies_dropped_total 1", "go_goroutines ", "process_cpu_seconds_total "} {
			if code != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("pprof %v: /metrics: %d, want 200 and a body with %q", withPprof, code, want)
			}
		}
		wantPprof := http.StatusNotFound
		if withPprof {
			wantPprof = http.StatusOK
		}
		if code, _ := get(t, base+"/debug/pprof/"); code != wantPprof {
			t.Errorf("pprof %v: /debug/pprof/: %d, want %d", withPprof, code, wantPprof)
		}
		if code, _ := get(t, base+"/debug/pprof/goroutine?debug=1"); code != wantPprof {
			t.Errorf("pprof %v: /debug/pprof/goroutine: %d, want %d", withPprof, code, wantPprof)
		}

		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve after its context ended: %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return within 10s of its context's end")
		}
		if c, err := net.DialTimeout("tcp", lis.Addr().String(), time.Second); err == nil {
			_ = c.Close()
			t.Errorf("pprof %v: still listening after Serve returned", withPprof)
		}
	}
}

// TestNewTwiceOnOneRegistryFails: the metrics are registered once per
// registry; a second Metrics on the same one is an error, not a panic.
func TestNewTwiceOnOneRegistryFails(t *testing.T) {
	t.Parallel()
	reg := metrics.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("a second New on one registry succeeded")
	}
}
