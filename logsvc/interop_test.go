package logsvc

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/pytest"
)

var interopCases = []struct {
	name    string
	ex      warrenv1.LogExchange
	kind    string
	binding []string
	key     string
}{
	{"fanout", fanout, "fanout", nil, "ignored"},
	{"direct", direct, "direct", []string{"warning", "error"}, "error"},
	{"topic", topic, "topic", []string{"kern.*"}, "kern.critical"},
}

// TestPikaEmitterToSubscribeLogs: emit_log*.py in the tutorial's style
// publishes; SubscribeLogs receives.
func TestPikaEmitterToSubscribeLogs(t *testing.T) {
	t.Parallel()
	pytest.Require(t)
	h := start(t, Config{})
	for _, tc := range interopCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ex, _ := h.cfg.exchange(tc.ex)
			s := h.subscribe(t, tc.ex, tc.binding...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := pytest.Command(ctx, t, "testdata/emit_log.py", brokertest.URL(), ex.name, tc.kind, tc.key, "A critical kernel error").CombinedOutput()
			if err != nil {
				t.Fatalf("emit_log.py: %v: %s", err, out)
			}
			got := s.recvN(t, 1, 10*time.Second)[0]
			if got.GetRoutingKey() != tc.key || got.GetBody() != "A critical kernel error" {
				t.Errorf("got %q %q, want %q %q", got.GetRoutingKey(), got.GetBody(), tc.key, "A critical kernel error")
			}
		})
	}
}

// TestEmitLogToPikaReceiver: receive_logs*.py in the tutorial's style
// consumes; EmitLog publishes.
func TestEmitLogToPikaReceiver(t *testing.T) {
	t.Parallel()
	pytest.Require(t)
	h := start(t, Config{})
	for _, tc := range interopCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ex, _ := h.cfg.exchange(tc.ex)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := pytest.Command(ctx, t, "testdata/receive_logs.py", brokertest.URL(), append([]string{ex.name, tc.kind}, tc.binding...)...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cancel()
				_ = cmd.Wait()
			}()
			lines := bufio.NewScanner(stdout)
			if !lines.Scan() || !strings.Contains(lines.Text(), "Waiting for logs") {
				t.Fatalf("receive_logs.py did not start: %q %v; stderr: %s", lines.Text(), lines.Err(), stderr.String())
			}
			h.emit(t, tc.ex, tc.key, "Run. Run. Or it will explode.")
			if !lines.Scan() {
				t.Fatalf("receive_logs.py printed nothing: %v; stderr: %s", lines.Err(), stderr.String())
			}
			if got, want := lines.Text(), " [x] "+tc.key+":Run. Run. Or it will explode."; got != want {
				t.Errorf("receive_logs.py printed %q, want %q", got, want)
			}
		})
	}
}
