package lookup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a Clock tests move by hand.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) NowNano() int64                      { return c.now.Load() }
func (c *fakeClock) Tick(time.Duration) <-chan time.Time { return nil }
func (c *fakeClock) advance(d time.Duration)             { c.now.Add(int64(d)) }

func newCache(t *testing.T, o Options) *Cache[string, int] {
	t.Helper()
	c, err := New[string, int](o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Concurrent Gets of one key make one call and share its answer.
func TestGetCoalesces(t *testing.T) {
	c := newCache(t, Options{TTL: time.Minute})
	var calls atomic.Int32
	release := make(chan struct{})
	load := func(context.Context, string) (int, error) {
		calls.Add(1)
		<-release
		return 42, nil
	}
	const n = 20
	var wg sync.WaitGroup
	var loaders atomic.Int32
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			v, loaded, err := c.Get(t.Context(), "k", load)
			if loaded {
				loaders.Add(1)
			}
			if err != nil || v != 42 {
				errs <- fmt.Errorf("got %d, %v", v, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // let the Gets pile up on the load
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("got %d calls, want 1", got)
	}
	if got := loaders.Load(); got != 1 {
		t.Fatalf("got %d Gets reporting loaded, want 1", got)
	}
	if v, ok := c.Cached("k"); !ok || v != 42 {
		t.Fatalf("Cached = %d, %v; want 42, true", v, ok)
	}
}

// An answer is reused until its TTL has passed, then loaded again.
func TestGetTTL(t *testing.T) {
	clk := &fakeClock{}
	clk.now.Store(1)
	c := newCache(t, Options{TTL: 10 * time.Second, Clock: clk})
	calls := 0
	load := func(context.Context, string) (int, error) { calls++; return calls, nil }
	tests := []struct {
		name       string
		advance    time.Duration
		want       int
		wantLoaded bool
	}{
		{name: "first", want: 1, wantLoaded: true},
		{name: "within the TTL", advance: 9 * time.Second, want: 1},
		{name: "past the TTL", advance: 2 * time.Second, want: 2, wantLoaded: true},
		{name: "fresh again", advance: time.Second, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.advance(tt.advance)
			v, loaded, err := c.Get(t.Context(), "k", load)
			if err != nil || v != tt.want || loaded != tt.wantLoaded {
				t.Fatalf("got %d, loaded %v, %v; want %d, loaded %v", v, loaded, err, tt.want, tt.wantLoaded)
			}
		})
	}
}

// A failed load is not cached: the next Get calls again.
func TestGetErrorNotCached(t *testing.T) {
	c := newCache(t, Options{TTL: time.Minute})
	errDown := errors.New("down")
	calls := 0
	load := func(context.Context, string) (int, error) {
		calls++
		if calls == 1 {
			return 0, errDown
		}
		return 7, nil
	}
	if _, _, err := c.Get(t.Context(), "k", load); !errors.Is(err, errDown) {
		t.Fatalf("got %v, want %v", err, errDown)
	}
	if _, ok := c.Cached("k"); ok {
		t.Fatal("the error was cached")
	}
	if v, loaded, err := c.Get(t.Context(), "k", load); err != nil || v != 7 || !loaded || calls != 2 {
		t.Fatalf("got %d, loaded %v, %v after %d calls; want 7 from a second call", v, loaded, err, calls)
	}
}

// Invalidate makes the next Get load.
func TestInvalidate(t *testing.T) {
	c := newCache(t, Options{TTL: time.Minute})
	calls := 0
	load := func(context.Context, string) (int, error) { calls++; return calls, nil }
	_, _, _ = c.Get(t.Context(), "k", load)
	c.Invalidate("k")
	if v, loaded, _ := c.Get(t.Context(), "k", load); v != 2 || !loaded {
		t.Fatalf("got %d, loaded %v; want a new load", v, loaded)
	}
}

// The cache keeps at most Size answers.
func TestSizeBounded(t *testing.T) {
	c := newCache(t, Options{TTL: time.Minute, Size: 100})
	load := func(_ context.Context, k string) (int, error) { return len(k), nil }
	for i := range 1000 {
		if _, _, err := c.Get(t.Context(), fmt.Sprint(i), load); err != nil {
			t.Fatal(err)
		}
	}
	c.c.CleanUp()
	if n := c.Len(); n > 100 {
		t.Fatalf("got %d answers cached, want at most 100", n)
	}
}

func TestNewRefusesNoTTL(t *testing.T) {
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := New[string, int](Options{TTL: ttl}); !errors.Is(err, ErrNoTTL) {
			t.Fatalf("TTL %v: got %v, want ErrNoTTL", ttl, err)
		}
	}
}

// Each calls fn once per index, at most limit at a time.
func TestEach(t *testing.T) {
	for _, tt := range []struct{ n, limit int }{{0, 4}, {1, 4}, {10, 1}, {10, 0}, {100, 4}, {3, 32}} {
		t.Run(fmt.Sprintf("n%d_limit%d", tt.n, tt.limit), func(t *testing.T) {
			seen := make([]atomic.Int32, tt.n)
			var running, peak atomic.Int32
			Each(tt.n, tt.limit, func(i int) {
				r := running.Add(1)
				for {
					p := peak.Load()
					if r <= p || peak.CompareAndSwap(p, r) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				seen[i].Add(1)
				running.Add(-1)
			})
			for i := range seen {
				if got := seen[i].Load(); got != 1 {
					t.Fatalf("fn(%d) called %d times", i, got)
				}
			}
			if p := int(peak.Load()); p > max(tt.limit, 1) {
				t.Fatalf("got %d calls at a time, want at most %d", p, max(tt.limit, 1))
			}
		})
	}
}
