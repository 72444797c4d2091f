package metrics

import (
	"sync"
	"sync/atomic"
)

// labels are the label values of one series, in the order of its vector's
// labels; the unused ones are "".
type labels [3]string

// children caches the series of one vector by their label values, so that
// an event on the hot path (a request published, a delivery handled) costs
// one map lookup instead of the vector's WithLabelValues: hashing the
// values, a read lock and a comparison of every value. The label values
// the core passes are bounded (core.Metrics), and so is the cache: it
// holds what the vector itself holds.
//
// Reads take no lock: the map is copied on write, and writes happen once
// per series.
type children[V any] struct {
	n   int               // the vector's count of labels
	get func(...string) V // the vector's WithLabelValues
	mu  sync.Mutex        // serializes writers
	m   atomic.Pointer[map[labels]V]
}

func newChildren[V any](n int, get func(...string) V) *children[V] {
	c := &children[V]{n: n, get: get}
	c.m.Store(&map[labels]V{})
	return c
}

// with returns the series of the label values l.
func (c *children[V]) with(l labels) V {
	if v, ok := (*c.m.Load())[l]; ok {
		return v
	}
	return c.add(l)
}

// add creates the series of l: apart from with, so that only a miss
// moves the label values to the heap.
func (c *children[V]) add(l labels) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if v, ok := old[l]; ok {
		return v
	}
	v := c.get(l[:c.n]...)
	next := make(map[labels]V, len(old)+1)
	for k, x := range old {
		next[k] = x
	}
	next[l] = v
	c.m.Store(&next)
	return v
}
