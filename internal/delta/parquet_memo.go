package delta

import (
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

// A struct column's value is often the same map from row to row: a lookup
// result shared through its cache, which the rows of one key all carry.
// Its shredded values are then the same too, so the encoder shreds it once
// per file and appends the recorded values again for the next rows that
// carry the very same map (the same pointer). Only top-level struct
// columns, outside any list, are remembered: their values start at
// repetition level 0, so the recorded levels hold for every row. A map is
// never changed once it is in a row (see the pipeline's Event), and the
// memo keeps the map, so its address cannot be reused while it is
// remembered. Statistics need no replay but the null counts: min and max
// already saw these values in this file.

// memoMax bounds the maps remembered per column and file; memoGiveUp is
// how many maps a column may record without one repeat before the file
// stops remembering for it (maps decoded per row never repeat).
const (
	memoMax    = 256
	memoGiveUp = 64
)

// memoReplays counts the struct values appended from the memo (tests
// check that it is used).
var memoReplays atomic.Int64

// memoEntry is one remembered map's shredded values.
type memoEntry struct {
	m map[string]any // kept alive: its address is the key
	// vals[i] are the values appended to column n.lo+i.
	vals  [][]parquet.Value
	nulls []int64 // per stat of the node's statsIn, the nulls it added
}

// memoCol is the memo of one top-level struct column.
type memoCol struct {
	entries map[unsafe.Pointer]*memoEntry
	hits    int
	off     bool
}

func mapPointer(m map[string]any) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&m)) }

// writeTopStruct is writeField for n, a struct field of the root, with the
// Go map m: the recorded values when this file shredded m already, else
// writeField, recording what it appended.
func (e *fileEncoder) writeTopStruct(n *wnode, m map[string]any, parentDef int) error {
	if e.memo == nil {
		e.memo = map[*wnode]*memoCol{}
	}
	mc := e.memo[n]
	if mc == nil {
		mc = &memoCol{entries: map[unsafe.Pointer]*memoEntry{}}
		e.memo[n] = mc
	}
	if mc.off {
		return e.writeField(n, m, 0, parentDef, false)
	}
	p := mapPointer(m)
	if me := mc.entries[p]; me != nil {
		mc.hits++
		memoReplays.Add(1)
		for i, vs := range me.vals {
			e.cols[n.lo+i] = append(e.cols[n.lo+i], vs...)
		}
		for i, s := range n.statsIn {
			e.stats[s].nulls += me.nulls[i]
		}
		return nil
	}
	if len(mc.entries) >= memoMax || (len(mc.entries) >= memoGiveUp && mc.hits == 0) {
		if mc.hits == 0 {
			mc.off = true
		}
		return e.writeField(n, m, 0, parentDef, false)
	}
	var start [64]int
	starts := start[:0]
	for c := n.lo; c < n.hi; c++ {
		starts = append(starts, len(e.cols[c]))
	}
	nulls := make([]int64, len(n.statsIn))
	for i, s := range n.statsIn {
		nulls[i] = e.stats[s].nulls
	}
	if err := e.writeField(n, m, 0, parentDef, false); err != nil {
		return err
	}
	me := &memoEntry{m: m, nulls: nulls, vals: make([][]parquet.Value, len(starts))}
	for i, c := range starts {
		me.vals[i] = slices.Clone(e.cols[n.lo+i][c:])
	}
	for i, s := range n.statsIn {
		me.nulls[i] = e.stats[s].nulls - nulls[i]
	}
	mc.entries[p] = me
	return nil
}
