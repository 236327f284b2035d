// Package gctune bounds how far the Go heap grows between collections:
// to a fraction above the largest live heap of the last collections,
// instead of GOGC's doubling of the live heap at the last one.
//
// A pipeline worker's live heap rises and falls with its flush cycle (rows
// buffered, then committed and let go). With GOGC=100 the runtime lets the
// heap grow to twice the live heap it found at its last collection, so a
// collection that happens to mark at the top of a cycle makes the heap,
// and the process's resident set, grow to twice that top. The tuner sets
// the runtime's soft memory limit (debug.SetMemoryLimit) after every
// collection to the memory the runtime uses outside the heap plus the
// largest live heap of the window times 1+Headroom. While the live heap
// is low GOGC still decides; near the top the limit makes the runtime
// collect sooner. Since the limit follows the live heap up after each
// collection, it does not stay below what the program holds, which is
// what makes a fixed GOMEMLIMIT below the live heap run the collector
// without pause.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure Start.
type Options struct {
	// Headroom is how far above the largest recent live heap the heap may
	// grow, as a fraction: 0.5 lets it grow by half. 0 or less: no tuning.
	Headroom float64
	// Window is how long a collection's live heap counts. Default 30 s.
	Window time.Duration
	// Min is the lowest limit set. Default 64 MiB.
	Min int64
}

// DefaultHeadroom is the Headroom of kpipe's long-running commands.
const DefaultHeadroom = 0.5

// Start tunes the memory limit after every collection until stop is
// called. It does not tune (ok false, stop a no-op) when o.Headroom <= 0
// or when the environment sets GOMEMLIMIT or GOGC: an operator's choice
// wins.
//
// The limit is the process's: while one Start is running, another one
// shares it (its options are not used) and the limit the program had
// comes back when the last of them is stopped. stop may be called more
// than once.
func Start(o Options, getenv func(string) (string, bool)) (stop func(), ok bool) {
	if o.Headroom <= 0 {
		return func() {}, false
	}
	for _, k := range []string{"GOMEMLIMIT", "GOGC"} {
		if v, set := getenv(k); set && v != "" {
			return func() {}, false
		}
	}
	if o.Window <= 0 {
		o.Window = 30 * time.Second
	}
	if o.Min <= 0 {
		o.Min = 64 << 20
	}
	running.mu.Lock()
	defer running.mu.Unlock()
	if running.users++; running.users == 1 {
		running.t = newTuner(o, time.Now)
		running.t.arm()
	}
	var once sync.Once
	return func() { once.Do(release) }, true
}

// running is the process's tuner and how many Starts share it.
var running struct {
	mu    sync.Mutex
	users int
	t     *tuner
}

func release() {
	running.mu.Lock()
	defer running.mu.Unlock()
	if running.users--; running.users == 0 {
		running.t.stop()
		running.t = nil
	}
}

// Limit returns the limit the tuner set last, 0 when it is not running or
// has not seen a collection yet.
func Limit() int64 {
	running.mu.Lock()
	t := running.t
	running.mu.Unlock()
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.limit
}

func newTuner(o Options, now func() time.Time) *tuner {
	return &tuner{o: o, prev: debug.SetMemoryLimit(-1), now: now, samples: []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}}
}

type tuner struct {
	o       Options
	prev    int64
	now     func() time.Time
	stopped atomic.Bool

	mu      sync.Mutex
	samples []metrics.Sample
	lives   []live // the window's collections, oldest first
	cycle   uint64
	limit   int64
}

type live struct {
	at    time.Time
	bytes uint64
}

// sentinel is an object of its own size class (no tiny allocation), whose
// finalizer runs after the collection that found it unreachable.
type sentinel struct {
	_ *int
	_ [16]byte
}

func (t *tuner) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		if t.stopped.Load() {
			return
		}
		t.update()
		t.arm()
	})
}

func (t *tuner) stop() {
	if t.stopped.Swap(true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	debug.SetMemoryLimit(t.prev)
}

// update reads the runtime's memory after a collection and sets the limit.
func (t *tuner) update() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.samples)
	v := func(i int) uint64 {
		if t.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return t.samples[i].Value.Uint64()
	}
	cycle := v(0)
	if cycle == t.cycle {
		return
	}
	t.cycle = cycle
	now := t.now()
	t.lives = append(t.lives, live{at: now, bytes: v(1)})
	var nonHeap uint64 // stacks, the runtime's own structures
	if heap := v(3) + v(4) + v(5) + v(6); v(2) > heap {
		nonHeap = v(2) - heap
	}
	t.limit = t.limitFor(now, nonHeap)
	debug.SetMemoryLimit(t.limit)
}

// limitFor drops the collections older than the window (keeping the
// latest) and returns the limit for their largest live heap, given the
// runtime's memory outside the heap.
func (t *tuner) limitFor(now time.Time, nonHeap uint64) int64 {
	keep := 0
	for keep < len(t.lives)-1 && now.Sub(t.lives[keep].at) > t.o.Window {
		keep++
	}
	t.lives = append(t.lives[:0], t.lives[keep:]...)
	var top uint64
	for _, l := range t.lives {
		top = max(top, l.bytes)
	}
	f := float64(nonHeap) + float64(top)*(1+t.o.Headroom)
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(int64(f), t.o.Min)
}
