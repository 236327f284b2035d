package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

// Compaction moves the rows of an input file into the output file column
// value by column value, without building a map per row, when the file's
// Parquet schema is the one the output is written with: the same columns
// in the same order, with the same names, field ids, repetition and
// (physical and logical) types. Then reading the file as maps and shredding
// them again (ReadFile, fileEncoder.addRow) would append the very values,
// with the very levels, that the file holds, so the values are appended as
// read, in the encoder's blocks of flushRows rows, and the statistics are
// fed the same values: the output file and its stats are those of the map
// path. (Only a map column may differ: the map path writes a map's entries
// in Go's random map order, this one in the file's order.) Any other file
// (an older schema before evolution or type widening, another engine's
// layout, a deletion vector) is read as maps.

// compactMoveOff forces compaction onto the map path (tests compare the
// two).
var compactMoveOff atomic.Bool

// compactMoved and compactFallbacks count the input files compaction moved
// by column values and those it read as maps (tests check which path was
// taken).
var compactMoved, compactFallbacks atomic.Int64

// addFileRows adds the rows of f, an input file of a compaction, to enc:
// moved by column values when its layout allows (see above), else read as
// maps.
func (t *Table) addFileRows(ctx context.Context, snap *Snapshot, enc *fileEncoder, f AddFile, nparts int) error {
	// eachFileRow and eachDataRow return add's error as it is.
	add := func(r map[string]any) error {
		if err := enc.addRow(r, nparts); err != nil {
			return fmt.Errorf("delta: optimize: rewriting %s: %w", f.Path, err)
		}
		return nil
	}
	switch {
	case compactMoveOff.Load():
		return eachFileRow(ctx, t.store, snap, f, add)
	case len(f.DeletionVector) > 0:
		compactFallbacks.Add(1)
		return eachFileRow(ctx, t.store, snap, f, add)
	}
	data, err := readDataFile(ctx, t.store, f)
	if err != nil {
		return err
	}
	if moved, err := enc.moveRows(data); moved {
		compactMoved.Add(1)
		if err != nil {
			return fmt.Errorf("delta: optimize: rewriting %s: %w", f.Path, err)
		}
		return nil
	}
	compactFallbacks.Add(1)
	return eachDataRow(ctx, t.store, snap, f, data, add)
}

// moveRows appends the rows of the Parquet file data to e by column values.
// moved is false, and nothing is appended, when the file cannot be moved
// (it does not open, or its schema is not e's); an error after moving
// began leaves e unusable, as a failed addRow does.
func (e *fileEncoder) moveRows(data []byte) (moved bool, err error) {
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil || !sameLayout(pf.Schema(), e.plan.schema) {
		return false, nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = filePanic(p)
		}
	}()
	m := newMoveCols(e.plan)
	buf := make([]parquet.Row, 128)
	for _, rg := range pf.RowGroups() {
		if err := e.moveRowGroup(rg, m, buf); err != nil {
			return true, err
		}
	}
	return true, nil
}

// moveRowGroup appends the rows of rg, in reads that end where the
// encoder flushes (every flushRows rows, as addRow does).
func (e *fileEncoder) moveRowGroup(rg parquet.RowGroup, m *moveCols, buf []parquet.Row) error {
	rows := rg.Rows()
	defer rows.Close()
	for {
		k := min(len(buf), flushRows-int(e.n%flushRows))
		n, rerr := rows.ReadRows(buf[:k])
		for _, row := range buf[:n] {
			if err := e.moveRow(row, m); err != nil {
				return err
			}
		}
		if n > 0 {
			if e.n += int64(n); e.n%flushRows == 0 {
				if err := e.flush(); err != nil {
					return err
				}
				m.arena = m.arena[:0] // the flushed values were copied
			}
		}
		switch {
		case errors.Is(rerr, io.EOF):
			return nil
		case rerr != nil:
			return fmt.Errorf("reading parquet rows: %w", rerr)
		case n == 0:
			return nil
		}
	}
}

// moveRow appends the values of one row, updating the statistics as
// writeField would: a null count for each value at row start whose
// definition level is below its stats column's, min and max of the
// non-null values of observed leaves.
func (e *fileEncoder) moveRow(row parquet.Row, m *moveCols) error {
	for _, v := range row {
		c, rep, def := v.Column(), v.RepetitionLevel(), v.DefinitionLevel()
		if s := m.nullStat[c]; s >= 0 && rep == 0 && def < m.nullDef[c] {
			e.stats[s].nulls++
		}
		obs := m.observe[c]
		switch v.Kind() {
		case parquet.ByteArray, parquet.FixedLenByteArray:
			// The value refers to the reader's page buffer: copy it.
			b := v.ByteArray()
			if m.str[c] && !utf8.Valid(b) {
				return schemaErr(m.path[c], "string is not valid UTF-8")
			}
			if obs >= 0 {
				e.observeBytes(m, obs, b)
			}
			if len(m.arena)+len(b) > cap(m.arena) {
				m.arena = make([]byte, 0, max(64<<10, 2*cap(m.arena), len(b)))
			}
			start := len(m.arena)
			m.arena = append(m.arena, b...)
			b = m.arena[start:len(m.arena):len(m.arena)]
			if v.Kind() == parquet.ByteArray {
				v = parquet.ByteArrayValue(b)
			} else {
				v = parquet.FixedLenByteArrayValue(b)
			}
		case parquet.Int32:
			if obs >= 0 {
				e.observeInt(obs, int64(v.Int32()))
			}
		case parquet.Int64:
			if obs >= 0 {
				e.observeInt(obs, v.Int64())
			}
		case parquet.Float:
			if obs >= 0 {
				e.observeFloat(obs, float64(v.Float()))
			}
		case parquet.Double:
			if obs >= 0 {
				e.observeFloat(obs, v.Double())
			}
		}
		e.appendValue(c, v, rep, def)
	}
	return nil
}

// observeBytes is observeString of b, copied (into m.kept) only when it
// becomes the minimum or maximum.
func (e *fileEncoder) observeBytes(m *moveCols, stat int, b []byte) {
	s := &e.stats[stat]
	lo, hi := !s.has || string(b) < s.minS, !s.has || string(b) > s.maxS
	if !lo && !hi {
		return
	}
	if len(m.kept)+len(b) > cap(m.kept) {
		m.kept = make([]byte, 0, max(4<<10, len(b)))
	}
	start := len(m.kept)
	m.kept = append(m.kept, b...)
	str := unsafe.String(unsafe.SliceData(m.kept[start:]), len(b))
	if lo {
		s.minS = str
	}
	if hi {
		s.maxS = str
	}
	s.has = true
}

// moveCols is what moveRow needs of each leaf column of a plan.
type moveCols struct {
	// nullStat is the stats column whose null count the column's values
	// at row start tell (a leaf's own, or that of the list or map the
	// column is the first of), -1 for none; nullDef is that node's
	// definition level when present.
	nullStat, nullDef []int
	// observe is the stats column of the leaf's min and max, -1 for none.
	observe []int
	// str marks string columns (checked for UTF-8) and path names them.
	str  []bool
	path []string
	// arena holds the copies of the byte arrays not flushed yet; kept
	// those of the string minimums and maximums, which are never
	// overwritten (the stats outlive the file).
	arena, kept []byte
}

func newMoveCols(p *writePlan) *moveCols {
	m := &moveCols{
		nullStat: make([]int, p.ncols), nullDef: make([]int, p.ncols), observe: make([]int, p.ncols),
		str: make([]bool, p.ncols), path: make([]string, p.ncols),
	}
	for c := range p.ncols {
		m.nullStat[c], m.observe[c] = -1, -1
	}
	var walk func(n *wnode)
	walk = func(n *wnode) {
		if n.stat >= 0 {
			m.nullStat[n.lo], m.nullDef[n.lo] = n.stat, n.def
			if n.observe {
				m.observe[n.col] = n.stat
			}
		}
		if n.kind == kindLeaf {
			m.str[n.col], m.path[n.col] = n.typ == TypeString, n.path
		}
		for _, c := range []*wnode{n.elem, n.key, n.val} {
			if c != nil {
				walk(c)
			}
		}
		for _, f := range n.fields {
			walk(f)
		}
	}
	walk(p.root)
	return m
}

// sameLayout reports whether a file of schema got holds the columns of
// want: parquet.EqualNodes compares names, order, repetition and types;
// the field ids (by which column mapping's id mode reads) are compared
// here.
func sameLayout(got, want parquet.Node) bool {
	return parquet.EqualNodes(got, want) && sameFieldIDs(got, want)
}

func sameFieldIDs(got, want parquet.Node) bool {
	gf, wf := got.Fields(), want.Fields()
	if len(gf) != len(wf) {
		return false
	}
	for i := range gf {
		if gf[i].ID() != wf[i].ID() || !sameFieldIDs(gf[i], wf[i]) {
			return false
		}
	}
	return true
}
