package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/metrics"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// TestMetricsOfATaskWorker shows that the task worker, built on
// core.Consumer, is measured like every consumer: tasks handled by code,
// their handling time, and the task it dead-lettered itself (published
// to the dead-letter queue, then acknowledged), which the broker cannot
// tell apart from a success.
func TestMetricsOfATaskWorker(t *testing.T) {
	t.Parallel()
	n := newNames(t)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	warrentest.StartWorkers(t, worker.Config{AMQP: core.Config{Metrics: m}},
		tasksvc.NewWorker(tasksvc.WorkerConfig{
			Queue: n.tasks, EventsExchange: n.events, MaxAttempts: 2, Logger: warrentest.QuietLog,
			Handler: func(_ context.Context, body []byte) error {
				if string(body) == "fail" {
					return errors.New("boom")
				}
				return nil
			},
		}))
	brokertest.WaitConsumers(t, n.tasks, 1)
	ch := brokertest.Channel(t)
	for _, body := range []string{"ok", "ok", "fail"} {
		err := ch.PublishWithContext(context.Background(), "", n.tasks, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
	}
	q := map[string]string{"queue": n.tasks}
	// 2 successes, and the failing task's 2 attempts: 4 deliveries.
	deadline := time.Now().Add(20 * time.Second)
	for value(t, reg, "warren_worker_handling_seconds", q) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("warren_worker_handling_seconds%v = %v after 20s, want 4", q, value(t, reg, "warren_worker_handling_seconds", q))
		}
		time.Sleep(50 * time.Millisecond)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warren_worker_handled_total", map[string]string{"queue": n.tasks, "code": "OK"}, 2},
		// A plain error counts as core.Status maps it, as for a server.
		{"warren_worker_handled_total", map[string]string{"queue": n.tasks, "code": "Unavailable"}, 2},
		{"warren_worker_dead_lettered_total", q, 1},
		{"warren_worker_in_flight", q, 0},
	}
	for _, tt := range tests {
		if got := value(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
