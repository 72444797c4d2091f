package tasksvc

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// keyTable remembers, in this process's memory, the idempotency keys of
// the submissions that succeeded within the last window, so that a
// repeated submission publishes nothing. At most max keys are remembered;
// past that the oldest are forgotten first.
//
// A key's first submission runs; a concurrent one with the same key waits
// for its outcome: the first's success is its own, and after the first's
// failure (which records nothing) it submits itself.
//
// Locks: mu guards entries and order and is never held while a
// submission runs.
type keyTable struct {
	window time.Duration
	max    int
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*keyEntry
	order   *list.List // keys of the completed entries, oldest first
}

type keyEntry struct {
	done    chan struct{} // closed once the first submission ended
	ok      bool          // it succeeded; written before done is closed
	expires time.Time     // set with ok
	elem    *list.Element // in order, once ok
}

func newKeyTable(window time.Duration, max int) *keyTable {
	return &keyTable{window: window, max: max, now: time.Now, entries: map[string]*keyEntry{}, order: list.New()}
}

// do runs submit once for key within the window. It returns nil when
// submit succeeded now or earlier (then nothing ran), or submit's error.
func (t *keyTable) do(ctx context.Context, key string, submit func() error) error {
	for {
		t.mu.Lock()
		t.expire()
		e, found := t.entries[key]
		if !found {
			e = &keyEntry{done: make(chan struct{})}
			t.entries[key] = e
			t.mu.Unlock()
			return t.first(key, e, submit)
		}
		succeeded := e.ok
		t.mu.Unlock()
		if succeeded {
			return nil
		}
		select {
		case <-e.done:
			if e.ok {
				return nil
			}
			// The first failed and recorded nothing: submit ourselves.
		case <-ctx.Done():
			return fmt.Errorf("wait for the submission with the same idempotency key: %w", ctx.Err())
		}
	}
}

// first runs the key's first submission and records its outcome.
func (t *keyTable) first(key string, e *keyEntry, submit func() error) error {
	succeeded := false // stays false if submit panics
	defer func() {
		t.mu.Lock()
		if succeeded {
			e.ok = true
			e.expires = t.now().Add(t.window)
			e.elem = t.order.PushBack(key)
			for t.order.Len() > t.max {
				t.forget(t.order.Front())
			}
		} else {
			delete(t.entries, key)
		}
		close(e.done)
		t.mu.Unlock()
	}()
	err := submit()
	succeeded = err == nil
	return err
}

// expire forgets the keys whose window has passed. The window is the same
// for every key, so they expire in the order they were recorded.
func (t *keyTable) expire() {
	now := t.now()
	for f := t.order.Front(); f != nil; f = t.order.Front() {
		if t.entries[f.Value.(string)].expires.After(now) {
			return
		}
		t.forget(f)
	}
}

func (t *keyTable) forget(el *list.Element) {
	delete(t.entries, el.Value.(string))
	t.order.Remove(el)
}

// len is the count of keys remembered or in flight.
func (t *keyTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
