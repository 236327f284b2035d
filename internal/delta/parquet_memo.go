package delta

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

// A struct column's value is often the same map from row to row: a lookup
// result shared through its cache, which the rows of one key all carry.
// Its shredded values are then the same too, so the encoder shreds it once
// and appends the recorded values again for the next rows that carry the
// very same map (the same pointer), with the statistics the value
// contributed (its null counts, minima and maxima), merged as if its
// values had been observed again. Only top-level struct columns, outside
// any list, are remembered: their values start at repetition level 0, so
// the recorded levels hold for every row. The memo keeps the map, so its
// address cannot be reused while it is remembered.
//
// A memo lives for one Append (shared by its files and their shredders),
// or, with AppendOptions.StableMaps (the caller never changes a map once
// it gave it to Append, as the pipeline's events guarantee), for as long
// as the table writes with the same plan: a lookup result cached for many
// flushes is then shredded once, not once per flush.

// A column's memo records a map the second time it sees it, so maps that
// come once (decoded per row) cost a set entry, not a recorded copy:
// memoSeen bounds that set (full, it starts over), memoMax the maps
// recorded (full, the column starts over with none). A column that has
// seen memoGiveUp maps without a second sighting stops looking for
// memoRetry rows, then tries again (a long-lived memo outlives what made it
// give up).
const (
	memoSeen   = 16384
	memoMax    = 8192
	memoGiveUp = memoSeen
	memoRetry  = 4 * memoGiveUp
)

// memoReplays counts the struct values appended from a memo (tests check
// that it is used).
var memoReplays atomic.Int64

// structMemo remembers shredded struct values per top-level struct column.
// It is safe for concurrent use: shredders of one file share it.
type structMemo struct {
	cols sync.Map // *wnode -> *memoCol
}

// memoCol is the memo of one top-level struct column.
type memoCol struct {
	entries atomic.Pointer[sync.Map] // unsafe.Pointer (the map's) -> *memoEntry
	n       atomic.Int64             // entries recorded in the current generation
	// seen holds the addresses of maps seen once, as integers: it keeps no
	// map alive, and an address reused by another map only makes that map
	// recorded (the entry keeps it alive) one sighting early.
	seenMu  sync.Mutex
	seen    map[uintptr]struct{}
	firsts  int64 // maps seen once since the column (re)started
	repeats atomic.Int64
	off     atomic.Bool
	skipped atomic.Int64 // rows written while off
}

// sighting records that the column met m, not in its entries; it reports
// whether m was met before (so is worth recording). After memoGiveUp maps
// met once and none twice, it turns the column off.
func (mc *memoCol) sighting(p unsafe.Pointer) bool {
	mc.seenMu.Lock()
	defer mc.seenMu.Unlock()
	if _, ok := mc.seen[uintptr(p)]; ok {
		delete(mc.seen, uintptr(p))
		mc.repeats.Add(1)
		return true
	}
	if mc.seen == nil || len(mc.seen) >= memoSeen {
		mc.seen = make(map[uintptr]struct{}, 256)
	}
	mc.seen[uintptr(p)] = struct{}{}
	if mc.firsts++; mc.firsts >= memoGiveUp && mc.repeats.Load() == 0 {
		mc.off.Store(true)
		mc.seen = nil
	}
	return false
}

// memoEntry is one remembered map's shredded values.
type memoEntry struct {
	m map[string]any // kept alive: its address is the key
	// vals are the values appended to columns n.lo, n.lo+1, …, ends[i]
	// the end of column n.lo+i's in vals.
	vals []parquet.Value
	ends []int32
	// stats, per stat of the node's statsIn, is what the value added.
	stats []memoStat
}

// memoStat is what one struct value added to a statistic of one of its
// leaves: a leaf outside any list holds one value a row, so it is a null,
// or one value (its minimum and its maximum), or a NaN. It is colStats
// without the second bound, half its size.
type memoStat struct {
	nulls    int32
	has, bad bool
	i        int64
	f        float64
	s        string
}

// memoStatOf returns s as a memoStat, false when s holds more than one
// value (or more nulls than a memoStat counts).
func memoStatOf(s *colStats) (memoStat, bool) {
	if s.nulls < 0 || s.nulls > 1<<31-1 || s.minI != s.maxI || s.minF != s.maxF || s.minS != s.maxS {
		return memoStat{}, false
	}
	return memoStat{nulls: int32(s.nulls), has: s.has, bad: s.bad, i: s.minI, f: s.minF, s: s.minS}, true
}

// stats returns o as the colStats it was taken from.
func (o *memoStat) stats() colStats {
	return colStats{nulls: int64(o.nulls), has: o.has, bad: o.bad, minI: o.i, maxI: o.i, minF: o.f, maxF: o.f, minS: o.s, maxS: o.s}
}

func mapPointer(m map[string]any) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&m)) }

func (sm *structMemo) col(n *wnode) *memoCol {
	if mc, ok := sm.cols.Load(n); ok {
		return mc.(*memoCol)
	}
	mc := &memoCol{}
	mc.entries.Store(new(sync.Map))
	v, _ := sm.cols.LoadOrStore(n, mc)
	return v.(*memoCol)
}

// writeTopStruct is writeField for n, a struct field of the root, with the
// Go map m: the recorded values and statistics when e's memo holds m,
// else writeField, recording what it appended and observed.
func (e *fileEncoder) writeTopStruct(n *wnode, m map[string]any, parentDef int) error {
	if e.memo == nil {
		return e.writeField(n, m, 0, parentDef, false)
	}
	mc := e.memo.col(n)
	if mc.off.Load() {
		if mc.skipped.Add(1) == memoRetry {
			mc.seenMu.Lock()
			mc.firsts = 0
			mc.repeats.Store(0)
			mc.skipped.Store(0)
			mc.off.Store(false)
			mc.seenMu.Unlock()
		}
		return e.writeField(n, m, 0, parentDef, false)
	}
	p := mapPointer(m)
	entries := mc.entries.Load()
	if v, ok := entries.Load(p); ok {
		me := v.(*memoEntry)
		memoReplays.Add(1)
		start := int32(0)
		for i, end := range me.ends {
			e.cols[n.lo+i] = append(e.cols[n.lo+i], me.vals[start:end]...)
			start = end
		}
		for i, s := range n.statsIn {
			st := me.stats[i].stats()
			e.stats[s].merge(&st)
		}
		return nil
	}
	if !mc.sighting(p) {
		return e.writeField(n, m, 0, parentDef, false)
	}
	// Shred m with the statistics of its columns emptied, to record what
	// it adds, then merge that into what the file had.
	var startBuf [64]int
	starts := startBuf[:0]
	for c := n.lo; c < n.hi; c++ {
		starts = append(starts, len(e.cols[c]))
	}
	saved := make([]colStats, len(n.statsIn))
	for i, s := range n.statsIn {
		saved[i], e.stats[s] = e.stats[s], colStats{}
	}
	err := e.writeField(n, m, 0, parentDef, false)
	me := &memoEntry{m: m, ends: make([]int32, len(starts)), stats: make([]memoStat, len(n.statsIn))}
	single := true
	for i, s := range n.statsIn {
		added := e.stats[s]
		e.stats[s] = saved[i]
		e.stats[s].merge(&added)
		var ok bool
		if me.stats[i], ok = memoStatOf(&added); !ok {
			single = false
		}
	}
	if err != nil || !single {
		// A value with more than one value in a statistic is not
		// recorded (a leaf outside lists has one).
		return err
	}
	total := 0
	for i, c := range starts {
		total += len(e.cols[n.lo+i]) - c
	}
	me.vals = make([]parquet.Value, 0, total)
	for i, c := range starts {
		me.vals = append(me.vals, e.cols[n.lo+i][c:]...)
		me.ends[i] = int32(len(me.vals))
	}
	if mc.n.Add(1) > memoMax {
		// Full: start over, so that maps still in use are remembered
		// again and the ones no longer used are let go.
		entries = new(sync.Map)
		mc.entries.Store(entries)
		mc.n.Store(1)
	}
	entries.Store(p, me)
	return nil
}
