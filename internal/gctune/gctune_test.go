package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

// TestLimitForWindow checks the limit follows the largest live heap of
// the window, forgets the ones older than it, and never goes below Min.
func TestLimitForWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tu := newTuner(Options{Headroom: 0.5, Window: 10 * time.Second, Min: 1000}, nil)
	add := func(at time.Duration, live uint64, nonHeap uint64) int64 {
		tu.lives = append(tu.lives, live0(t0.Add(at), live))
		return tu.limitFor(t0.Add(at), nonHeap)
	}
	if got := add(0, 100_000, 10_000); got != 160_000 {
		t.Fatalf("first: got %d, want 10000 + 1.5 × 100000", got)
	}
	if got := add(5*time.Second, 40_000, 10_000); got != 160_000 {
		t.Fatalf("within the window: got %d, want the 100000 live heap to count", got)
	}
	if got := add(11*time.Second, 40_000, 10_000); got != 70_000 {
		t.Fatalf("past the window: got %d, want 10000 + 1.5 × 40000", got)
	}
	if got := add(12*time.Second, 200_000, 0); got != 300_000 {
		t.Fatalf("growing: got %d, want 1.5 × 200000 at once", got)
	}
	if got := add(60*time.Second, 100, 0); got != 1000 {
		t.Fatalf("small: got %d, want Min", got)
	}
	if len(tu.lives) != 1 {
		t.Fatalf("%d live heaps kept after the window passed, want the latest only", len(tu.lives))
	}
}

func live0(at time.Time, b uint64) live { return live{at: at, bytes: b} }

// TestStartSetsLimitAfterCollections starts the tuner, runs collections
// with a known live heap, and checks the limit is set above it and below
// GOGC's doubling, and restored by stop.
func TestStartSetsLimitAfterCollections(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	stop, ok := Start(Options{Headroom: 0.25}, noEnv)
	if !ok {
		t.Fatal("Start did not tune")
	}
	// A second user shares the tuner; stopping it changes nothing.
	stop2, ok := Start(Options{Headroom: 3}, noEnv)
	if !ok {
		t.Fatal("second Start did not share the tuner")
	}
	stop2()
	stop2()
	keep := make([][]byte, 64)
	for i := range keep {
		keep[i] = make([]byte, 1<<20) // 64 MiB live
	}
	// The update runs on the finalizer goroutine after a collection.
	var limit int64
	for deadline := time.Now().Add(time.Minute); limit == 0; limit = Limit() {
		if time.Now().After(deadline) {
			t.Fatal("no limit set after a minute of collections")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Fatalf("runtime limit %d, tuner says %d", got, limit)
	}
	if lo, hi := int64(64<<20)*5/4, int64(64<<20)*2+(64<<20); limit < lo || limit > hi {
		t.Fatalf("limit %d MiB for a 64 MiB live heap with headroom 0.25: want %d..%d MiB", limit>>20, lo>>20, hi>>20)
	}
	runtime.KeepAlive(keep)
	stop()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("limit after stop %d, want the one before, %d", got, before)
	}
	if Limit() != 0 {
		t.Fatal("Limit after stop is not 0")
	}
}

// TestStartLeavesOperatorsLimit checks GOMEMLIMIT, GOGC and a zero
// headroom turn tuning off.
func TestStartLeavesOperatorsLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	for k, v := range map[string]string{"GOMEMLIMIT": "200MiB", "GOGC": "50"} {
		env := func(name string) (string, bool) {
			if name == k {
				return v, true
			}
			return "", false
		}
		if stop, ok := Start(Options{Headroom: 0.5}, env); ok {
			stop()
			t.Fatalf("tuned although %s is set", k)
		}
	}
	if stop, ok := Start(Options{}, noEnv); ok {
		stop()
		t.Fatal("tuned with headroom 0")
	}
	runtime.GC()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("limit changed to %d", got)
	}
}
