package tasksvc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyTable(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	kt := newKeyTable(time.Minute, 3)
	kt.now = func() time.Time { return now }
	ctx := context.Background()
	runs := map[string]int{}
	ok := func(key string) func() error { return func() error { runs[key]++; return nil } }
	fail := func(key string) func() error {
		return func() error { runs[key]++; return errors.New("broker said no") }
	}

	steps := []struct {
		name     string
		key      string
		submit   func(string) func() error
		advance  time.Duration
		wantErr  bool
		wantRuns int
	}{
		{name: "first submission runs", key: "a", submit: ok, wantRuns: 1},
		{name: "repeat within the window does not", key: "a", submit: ok, advance: 59 * time.Second, wantRuns: 1},
		{name: "repeat after the window runs", key: "a", submit: ok, advance: 2 * time.Second, wantRuns: 2},
		{name: "a failure is returned", key: "b", submit: fail, wantErr: true, wantRuns: 1},
		{name: "and recorded nothing", key: "b", submit: ok, wantRuns: 2},
		{name: "c", key: "c", submit: ok, wantRuns: 1},
		{name: "d pushes the oldest (a) out", key: "d", submit: ok, wantRuns: 1},
		{name: "a forgotten early, runs again", key: "a", submit: ok, wantRuns: 3},
		{name: "d still remembered", key: "d", submit: ok, wantRuns: 1},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		err := kt.do(ctx, s.key, s.submit(s.key))
		if (err != nil) != s.wantErr || runs[s.key] != s.wantRuns {
			t.Fatalf("%s: got err %v and %d runs of %s, want err %v and %d runs", s.name, err, runs[s.key], s.key, s.wantErr, s.wantRuns)
		}
	}
	if got := kt.len(); got != 3 {
		t.Errorf("got %d keys remembered, want at most 3", got)
	}
}

// TestKeyTableConcurrent: concurrent submissions with one key wait for
// the first; when it fails, one of them runs next.
func TestKeyTableConcurrent(t *testing.T) {
	t.Parallel()
	kt := newKeyTable(time.Minute, 10)
	var runs atomic.Int32
	release := make(chan struct{})
	first := func() error {
		runs.Add(1)
		<-release
		return errors.New("first failed")
	}
	then := func() error { runs.Add(1); return nil }
	errFirst := make(chan error, 1)
	go func() { errFirst <- kt.do(context.Background(), "k", first) }()
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = kt.do(context.Background(), "k", then) })
	}
	time.Sleep(20 * time.Millisecond)
	if got := runs.Load(); got != 1 {
		t.Fatalf("got %d runs while the first was in flight, want 1", got)
	}
	close(release)
	wg.Wait()
	if err := <-errFirst; err == nil {
		t.Error("first: got nil, want its error")
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("waiter %d: %v", i, err)
		}
	}
	if got := runs.Load(); got != 2 {
		t.Errorf("got %d runs, want 2 (the failed first, then one waiter)", got)
	}

	// A waiter whose context ends stops waiting.
	block := make(chan struct{})
	go func() { _ = kt.do(context.Background(), "slow", func() error { <-block; return nil }) }()
	for kt.len() < 2 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := kt.do(ctx, "slow", then); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want %v", err, context.DeadlineExceeded)
	}
	close(block)
	before := runs.Load()
	if err := kt.do(context.Background(), "slow", then); err != nil || runs.Load() != before {
		t.Errorf("after the slow first succeeded: got %v and %d more runs, want nil and none", err, runs.Load()-before)
	}
}
