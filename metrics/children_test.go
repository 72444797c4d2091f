package metrics

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The cache hands out the vector's own series, one per label values,
// from any number of goroutines at once.
func TestChildrenAreTheVectorsSeries(t *testing.T) {
	t.Parallel()
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c", Help: "h"}, []string{"a", "b"})
	c := newChildren(2, vec.WithLabelValues)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.with(labels{"x", "y"}).Inc()
				c.with(labels{"x", ""}).Inc()
			}
		})
	}
	wg.Wait()
	for _, l := range [][]string{{"x", "y"}, {"x", ""}} {
		var m dto.Metric
		if err := vec.WithLabelValues(l...).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != 800 {
			t.Errorf("series %q = %v, want 800", l, got)
		}
	}
	ch := make(chan prometheus.Metric, 10)
	vec.Collect(ch)
	if got := len(ch); got != 2 {
		t.Errorf("series = %d, want 2", got)
	}
}

// A cached event allocates nothing.
func TestChildrenCachedAllocatesNothing(t *testing.T) {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "h"}, []string{"queue"})
	c := newChildren(1, vec.WithLabelValues)
	c.with(labels{"q"}).Observe(1)
	if n := testing.AllocsPerRun(100, func() { c.with(labels{"q"}).Observe(1) }); n != 0 {
		t.Errorf("allocs per cached observation = %v, want 0", n)
	}
}

func BenchmarkChildren(b *testing.B) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c", Help: "h"}, []string{"exchange", "queue"})
	c := newChildren(2, vec.WithLabelValues)
	b.Run("WithLabelValues", func(b *testing.B) {
		for b.Loop() {
			vec.WithLabelValues("", "rpc_queue").Inc()
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			c.with(labels{"", "rpc_queue"}).Inc()
		}
	})
}
