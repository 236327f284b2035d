package delta

import (
	"context"
	"fmt"
	"slices"
)

// zorderKeys returns each row's Z-value over cols: for every column, the
// row's value is replaced by its rank among the column's distinct values
// (nulls first), scaled to 32 bits so that every column weighs the same
// however many distinct values it has; the ranks' bits are then
// interleaved, most significant first, column by column. Rows close in
// Z-value are close in every column, so consecutive runs of rows sorted by
// it have narrow min/max ranges in all of them.
func zorderKeys(rows []map[string]any, cols []string) [][]uint64 {
	n := len(rows)
	ranks := make([][]uint32, len(cols))
	idx := make([]int, n)
	for ci, c := range cols {
		for i := range idx {
			idx[i] = i
		}
		cmp := func(a, b any) int {
			switch {
			case a == nil && b == nil:
				return 0
			case a == nil:
				return -1
			case b == nil:
				return 1
			}
			return cmpValues(a, b)
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp(rows[a][c], rows[b][c]) })
		dense := make([]uint64, n)
		distinct := uint64(0)
		for j, i := range idx {
			if j > 0 && cmp(rows[idx[j-1]][c], rows[i][c]) != 0 {
				distinct++
			}
			dense[i] = distinct
		}
		distinct++
		r := make([]uint32, n)
		for i, d := range dense {
			r[i] = uint32((d << 32) / distinct)
		}
		ranks[ci] = r
	}
	words := (len(cols)*32 + 63) / 64
	keys := make([][]uint64, n)
	for i := range keys {
		k := make([]uint64, words)
		bit := 0
		for b := 31; b >= 0; b-- {
			for ci := range cols {
				if ranks[ci][i]>>uint(b)&1 == 1 {
					k[bit/64] |= 1 << uint(63-bit%64)
				}
				bit++
			}
		}
		keys[i] = k
	}
	return keys
}

// rewriteZOrder reads every row of b's files, sorts them by Z-value over
// cols and writes them as files of about target bytes (estimated from the
// input's bytes per row).
func (t *Table) rewriteZOrder(ctx context.Context, snap *Snapshot, plan *writePlan, b optimizeBin, cols []string, target int64) ([]AddFile, int64, error) {
	var rows []map[string]any
	for _, f := range b.files {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		rs, err := ReadFile(ctx, t.store, snap, f)
		if err != nil {
			return nil, 0, err
		}
		rows = append(rows, rs...)
	}
	if len(rows) == 0 {
		return nil, 0, nil
	}
	keys := zorderKeys(rows, cols)
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int { return slices.Compare(keys[x], keys[y]) })
	perFile := len(rows)
	bpr := bytesPerRow(b.files)
	if bpr <= 0 {
		bpr = float64(b.bytes) / float64(len(rows))
	}
	if est := float64(len(rows)) * bpr; est > float64(target) {
		perFile = int(max(1, float64(target)/bpr))
	}
	nparts := len(snap.metadata.PartitionColumns)
	var out []AddFile
	for lo := 0; lo < len(order); lo += perFile {
		hi := min(lo+perFile, len(order))
		if len(order)-hi < perFile/4 {
			hi = len(order) // no sliver of a file at the end
		}
		file, err := t.newRewriteFile(snap, plan, b.values, len(out), hi-lo, bpr)
		if err != nil {
			return out, 0, err
		}
		for _, i := range order[lo:hi] {
			if err := file.enc.addRow(rows[i], nparts); err != nil {
				file.release()
				return out, 0, fmt.Errorf("delta: optimize: rewriting partition %v: %w", b.values, err)
			}
			rows[i] = nil // written: let it go
		}
		add, err := file.finish(ctx)
		if err != nil {
			return out, 0, err
		}
		out = append(out, add)
		if hi == len(order) {
			break
		}
	}
	return out, int64(len(order)), nil
}
