package dedupe_test

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"kpipe/internal/dedupe"
)

// rssBytes reads the process's resident set size from /proc (0 elsewhere).
func rssBytes() int64 { return procStatus("VmRSS:") }

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func settle() (rss int64, heap uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return rssBytes(), m.HeapAlloc
}

// BenchmarkMemory fills a Set with simulator-like keys spread over a
// 168 h window and reports its memory a key: B/key-rss (resident set
// growth, after GC), B/key-heap (live heap growth) and B/key-est (Bytes).
func BenchmarkMemory(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run("keys="+strconv.Itoa(n/1_000_000)+"M", func(b *testing.B) {
			var s *dedupe.Set
			for b.Loop() {
				s = nil
				rss0, heap0 := settle()
				s = dedupe.New(168 * time.Hour)
				step := 168 * time.Hour / time.Duration(n)
				var buf [32]byte
				for i := range n {
					s.AddBytes(eventID(&buf, i), t0.Add(time.Duration(i)*step))
				}
				rss1, heap1 := settle()
				b.ReportMetric(float64(rss1-rss0)/float64(n), "B/key-rss")
				b.ReportMetric(float64(heap1-heap0)/float64(n), "B/key-heap")
				b.ReportMetric(float64(s.Bytes())/float64(n), "B/key-est")
			}
			runtime.KeepAlive(s)
		})
	}
}

// BenchmarkSeen looks up keys in a Set of 1M keys over 168 h: keys held
// (found in one of the 9 buckets) and new keys (most answered by the
// filter).
func BenchmarkSeen(b *testing.B) {
	const n = 1_000_000
	s := dedupe.New(168 * time.Hour)
	var buf [32]byte
	for i := range n {
		s.AddBytes(eventID(&buf, i), t0.Add(time.Duration(i)*(168*time.Hour/n)))
	}
	for _, c := range []struct {
		name string
		base int
	}{{"held", 0}, {"new", n}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if s.SeenBytes(eventID(&buf, c.base+(i*7919)%n)) != (c.base == 0) {
					b.Fatal("wrong answer")
				}
				i++
			}
		})
	}
}

// BenchmarkRebuild rebuilds a Set from a table of SPEC-like rows (event_id
// as the simulator makes them, event_timestamp over 8 days, daily
// partitions, written in commits of 50,000 rows) with a 168 h window.
// rows/s is the table's rows over the rebuild time; the files of the
// eighth day, outside the window, are pruned by their stats and not read.
// rows=10M runs with KPIPE_DEDUPE_BENCH_10M=1: writing its table takes
// minutes.
func BenchmarkRebuild(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run("rows="+strconv.Itoa(n/1_000_000)+"M", func(b *testing.B) {
			if n > 1_000_000 && os.Getenv("KPIPE_DEDUPE_BENCH_10M") == "" {
				b.Skip("set KPIPE_DEDUPE_BENCH_10M=1 to write and read a 10M-row table")
			}
			tb, store := newEventsTable(b)
			span := 8 * 24 * time.Hour
			appendEvents(b, tb, 0, n, 50_000, t0, span/time.Duration(n))
			snap, err := tb.Snapshot(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			now := t0.Add(span)
			rss0, _ := settle()
			// Reset the peak RSS (VmHWM) to the current RSS.
			_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
			b.ResetTimer()
			var s *dedupe.Set
			for b.Loop() {
				s = nil // one Set at a time
				if s, err = rebuild(b.Context(), store, snap, "event_id", "event_timestamp", 168*time.Hour, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(s.Len()), "keys")
			b.ReportMetric(float64(s.Bytes())/float64(s.Len()), "B/key-est")
			b.ReportMetric(float64(snap.NumFiles()), "files")
			if peak := procStatus("VmHWM:"); peak > 0 && rss0 > 0 {
				// The Set's keys plus what reading holds at once.
				b.ReportMetric(float64(peak-rss0)/(1<<20), "MB-peak-rss-growth")
			}
		})
	}
}
