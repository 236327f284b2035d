// Package lookup is the cache in front of a slow keyed source (an HTTP API):
// lookups of one key are coalesced into one call at a time, whose answer
// every caller waiting meanwhile shares; answers are reused for a TTL, in a
// cache of bounded size; failures are not cached, so the next Get calls
// again. Each runs the calls of distinct keys concurrently, at most a bound
// at a time. It knows nothing of what it looks up.
//
//	c, err := lookup.New[string, Row](lookup.Options{TTL: time.Minute, Size: 10_000})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	keys := []string{"a", "b", "a"}
//	rows := make([]Row, len(keys))
//	lookup.Each(len(keys), 32, func(i int) {
//		rows[i], _, _ = c.Get(ctx, keys[i], fetchRow) // "a" is fetched once
//	})
package lookup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// DefaultSize is the number of answers a cache keeps when Options.Size is
// not set.
const DefaultSize = 10_000

// ErrNoTTL is returned by New when Options.TTL is not positive: a cache
// without one would never forget an answer.
var ErrNoTTL = errors.New("lookup: the TTL must be positive")

// Options configure a Cache.
type Options struct {
	// TTL is how long an answer is reused after it was loaded. Required.
	TTL time.Duration
	// Size bounds the answers kept; past it the least useful are evicted.
	// Default DefaultSize.
	Size int
	// Clock, when set, is the time source of the TTL (tests). Default the
	// wall clock.
	Clock Clock
}

// Clock is a time source: NowNano counts nanoseconds from a fixed point,
// Tick delivers ticks at an interval (nil: none) for the eviction of
// expired answers.
type Clock interface {
	NowNano() int64
	Tick(d time.Duration) <-chan time.Time
}

// LoadFunc loads the answer for key: the slow call the cache saves.
type LoadFunc[K comparable, V any] func(ctx context.Context, key K) (V, error)

// Cache is a coalescing TTL cache of answers by key. It is safe for
// concurrent use; Get blocks while the key's answer is loaded, by this or
// another caller.
type Cache[K comparable, V any] struct {
	c *otter.Cache[K, V]
}

// New builds a cache.
func New[K comparable, V any](o Options) (*Cache[K, V], error) {
	if o.TTL <= 0 {
		return nil, fmt.Errorf("%w (got %v)", ErrNoTTL, o.TTL)
	}
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	oo := &otter.Options[K, V]{
		MaximumSize:      o.Size,
		ExpiryCalculator: otter.ExpiryWriting[K, V](o.TTL),
	}
	if o.Clock != nil {
		oo.Clock = o.Clock
	}
	c, err := otter.New(oo)
	if err != nil {
		return nil, fmt.Errorf("lookup: building the cache: %w", err)
	}
	return &Cache[K, V]{c: c}, nil
}

// Cached returns key's answer when the cache holds one, without loading.
func (c *Cache[K, V]) Cached(key K) (V, bool) {
	return c.c.GetIfPresent(key)
}

// Get returns key's answer: the cached one, or the one load returns. While
// one load of key runs, other Gets of key wait for it and share its
// answer or its error, so a key is loaded once at a time; loaded is true
// for the caller whose load ran. An error is not cached. load runs with
// the ctx of the Get that started it.
func (c *Cache[K, V]) Get(ctx context.Context, key K, load LoadFunc[K, V]) (v V, loaded bool, err error) {
	v, err = c.c.Get(ctx, key, otter.LoaderFunc[K, V](func(ctx context.Context, key K) (V, error) {
		loaded = true
		return load(ctx, key)
	}))
	return v, loaded, err
}

// Invalidate drops key's cached answer, if any: the next Get loads it.
func (c *Cache[K, V]) Invalidate(key K) {
	c.c.Invalidate(key)
}

// Len is the number of answers cached, expired ones not yet evicted
// included.
func (c *Cache[K, V]) Len() int {
	return c.c.EstimatedSize()
}

// Close stops the cache's background work. The cache must not be used
// afterwards.
func (c *Cache[K, V]) Close() {
	c.c.StopAllGoroutines()
}

// Each calls fn(i) for every i in [0, n), at most limit calls at a time
// (limit < 1 counts as 1), and returns once all have returned. With one
// call at a time they run in order on the caller's goroutine.
func Each(n, limit int, fn func(i int)) {
	workers := min(n, max(limit, 1))
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
