package delta

import (
	"bytes"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
	"unsafe"

	"kpipe/internal/jsonx"

	"github.com/parquet-go/parquet-go"
)

// fileEncoder shreds rows of one data file into per-column Parquet values
// and computes the file's statistics in the same pass; every flushRows rows
// it hands the values to the Parquet writer, while they are still in cache.
// Values and stats of a string column refer to the rows' strings, so the
// rows must outlive encode.
type fileEncoder struct {
	plan    *writePlan
	cols    [][]parquet.Value
	stats   []colStats
	scratch []any
	// seen marks, per struct field (at the node's scr, as scratch), the
	// fields of the RawObject being shredded that were written.
	seen []bool
	// memo remembers the shredded values of top-level struct maps
	// (parquet_memo.go); nil: none.
	memo *structMemo
	n    int64
	// w writes the file into buf; rows are flushed to it every flushRows.
	//lint:ignore SA1019 the untyped Writer takes a schema built at run time from the Delta schema; GenericWriter needs a Go type.
	w   *parquet.Writer
	buf *bytes.Buffer
	// wkey is what w was made for, to keep it once the file is whole.
	wkey writerKey
	// spool is how the file is written when spoolTo was called.
	spool spoolOptions
	// rgRows and rgStart are the rows and bytes written before the current
	// row group.
	rgRows, rgStart int64
	// rootIgnored is how many of the plan's ignored keys the current row
	// has, or -1 when unknown (then writeStruct looks them up).
	rootIgnored int
	// casts are the Append's AppendOptions.Casts, by column path; they are
	// looked up only for a value of another type than its column's.
	casts map[string]Cast
}

// newFileEncoder returns an encoder of p, reused from p's pool when one is
// free; release returns it.
func newFileEncoder(p *writePlan, capRows int) *fileEncoder {
	if e, ok := p.encoders.Get().(*fileEncoder); ok {
		return e
	}
	e := &fileEncoder{
		plan:    p,
		cols:    make([][]parquet.Value, p.ncols),
		stats:   make([]colStats, len(p.stats)),
		scratch: make([]any, p.nscratch),
		seen:    make([]bool, p.nscratch),
	}
	for c := range e.cols {
		e.cols[c] = make([]parquet.Value, 0, min(capRows, flushRows))
	}
	return e
}

// release clears e (so the pool pins no row data) and pools it.
func (e *fileEncoder) release() {
	e.reset()
	e.casts = nil
	e.plan.encoders.Put(e)
}

// reset empties e of rows and stats, for reuse with the same plan.
func (e *fileEncoder) reset() {
	for c, vals := range e.cols {
		clear(vals)
		e.cols[c] = vals[:0]
	}
	clear(e.stats)
	clear(e.scratch)
	clear(e.seen)
	e.memo = nil
	e.n = 0
	e.w, e.buf, e.wkey = nil, nil, writerKey{}
	e.spool, e.rgRows, e.rgStart = spoolOptions{}, 0, 0
}

// spoolOptions say how a file of a rewrite is written (fileEncoder.spoolTo).
type spoolOptions struct {
	// out receives the file; nil: in memory, as encode returns it.
	out io.Writer
	// rowGroupRows ends a row group after about this many rows, else (0)
	// rowGroupBytes once the Parquet writer holds that many bytes of the
	// row group; both 0: one row group.
	rowGroupRows, rowGroupBytes int64
	// pageBytes is the data page size; 0 means pageBufferSize.
	pageBytes int
}

// spoolTo makes e write its file as o says: to o.out instead of memory
// unless nil, in row groups that bound what the Parquet writer holds (the
// compressed pages of the current row group, and a page of values per
// column), however large the file. It must be called before the first
// row; with an out, encode returns no bytes.
func (e *fileEncoder) spoolTo(o spoolOptions) { e.spool = o }

// add shreds one row. An error leaves the encoder unusable for the file:
// a failed row fails the whole file, so stats may be updated as the row is
// shredded.
func (e *fileEncoder) add(row map[string]any) error {
	return e.addRow(row, -1)
}

// addRow is add for a row known to have ignored keys of the plan (the
// partition columns) as keys, null or not; -1 if unknown.
func (e *fileEncoder) addRow(row map[string]any, ignored int) error {
	e.rootIgnored = ignored
	if err := e.writeStruct(e.plan.root, row, 0, false, true); err != nil {
		return err
	}
	if e.n++; e.n%flushRows == 0 {
		return e.flush()
	}
	return nil
}

func (n *wnode) hasField(name string) bool {
	for _, f := range n.fields {
		if f.name == name {
			return true
		}
	}
	return false
}

// writeStruct shreds the fields of m. It looks every field up once and
// counts the keys found: when that count is len(m), m has no key outside the
// schema, which saves iterating the map.
func (e *fileEncoder) writeStruct(n *wnode, m map[string]any, rep int, inRep, root bool) error {
	vals := e.scratch[n.scr : n.scr+len(n.fields)]
	found := 0
	for i, f := range n.fields {
		x, ok := m[f.name]
		if ok {
			found++
		}
		vals[i] = x
	}
	if root {
		if e.rootIgnored >= 0 {
			found += e.rootIgnored
		} else {
			for _, k := range e.plan.ignoreKeys {
				if _, ok := m[k]; ok {
					found++
				}
			}
		}
	}
	if found != len(m) {
		// The error names the first unknown key in key order, so that it
		// does not depend on the map's order.
		unknown, has := "", false
		for k, x := range m {
			if n.hasField(k) || untypeable(x) || root && e.plan.ignore[k] {
				continue
			}
			if !has || k < unknown {
				unknown, has = k, true
			}
		}
		if has && root {
			return &SchemaError{Row: -1, Path: unknown, Reason: "column not in table schema", Err: errUnknownField}
		}
		if has {
			return &SchemaError{Row: -1, Path: joinPath(n.path, unknown), Reason: "field not in table schema", Err: errUnknownField}
		}
	}
	for i, f := range n.fields {
		if root && f.kind == kindStruct {
			if m, ok := vals[i].(map[string]any); ok {
				if err := e.writeTopStruct(f, m, n.def); err != nil {
					return err
				}
				continue
			}
		}
		if err := e.writeField(f, vals[i], rep, n.def, inRep); err != nil {
			return err
		}
	}
	return nil
}

func (e *fileEncoder) writeNulls(n *wnode, rep, def int) {
	for c := n.lo; c < n.hi; c++ {
		e.appendValue(c, parquet.Value{}, rep, def)
	}
}

func (e *fileEncoder) writeField(n *wnode, v any, rep, parentDef int, inRep bool) error {
	if v == nil {
		if !n.nullable {
			return schemaErr(n.path, "null in NOT NULL column")
		}
		e.writeNulls(n, rep, parentDef)
		if !inRep {
			for _, s := range n.statsIn {
				e.stats[s].nulls++
			}
		}
		return nil
	}
	switch n.kind {
	case kindLeaf:
		return e.writeLeaf(n, v, rep, !inRep && n.observe)
	case kindStruct:
		if r, ok := v.(*jsonx.RawObject); ok {
			return e.writeRaw(n, r, rep, inRep)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return conflict(n.typ, v, n.path, "")
		}
		return e.writeStruct(n, m, rep, inRep, false)
	case kindList:
		l, ok := toSlice(v)
		if !ok {
			return conflict(n.typ, v, n.path, "")
		}
		if len(l) == 0 {
			e.writeNulls(n, rep, n.def)
			return nil
		}
		for i, x := range l {
			r := n.rrep
			if i == 0 {
				r = rep
			}
			if err := e.writeField(n.elem, x, r, n.rdef, true); err != nil {
				return err
			}
		}
	case kindMap:
		if r, ok := v.(*jsonx.RawObject); ok {
			v = r.Map() // a map's entries are few: decode them
		}
		entries, ok := toEntries(v)
		if !ok {
			return conflict(n.typ, v, n.path, "")
		}
		if len(entries) == 0 {
			e.writeNulls(n, rep, n.def)
			return nil
		}
		for i, kv := range entries {
			r := n.rrep
			if i == 0 {
				r = rep
			}
			if kv[0] == nil {
				return schemaErr(n.path, "null map key")
			}
			if err := e.writeField(n.key, kv[0], r, n.rdef, true); err != nil {
				return err
			}
			if err := e.writeField(n.val, kv[1], r, n.rdef, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeLeaf appends the Parquet value of v to n's column and, when observe,
// folds it into the column statistics. The common Go types are converted
// here without boxing; the others go through coerceValue.
func (e *fileEncoder) writeLeaf(n *wnode, v any, rep int, observe bool) error {
	switch n.typ {
	case TypeString:
		if s, ok := v.(string); ok {
			return e.leafString(n, s, rep, observe)
		}
	case TypeLong, TypeInteger, TypeShort, TypeByte:
		if x, ok, err := toInt64(v); ok && err == nil && e.leafInt(n, x, rep, observe) {
			return nil
		}
	case TypeTimestamp, TypeTimestampNTZ:
		if t, ok := v.(time.Time); ok {
			// UnixMicro rounds down, as Truncate(time.Microsecond) does.
			x := t.UnixMicro()
			e.appendValue(n.col, parquet.Int64Value(x), rep, n.def)
			if observe {
				e.observeInt(n.stat, x)
			}
			return nil
		}
	case TypeDouble:
		if f, ok := v.(float64); ok {
			e.leafDouble(n, f, rep, observe)
			return nil
		}
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			e.leafBool(n, b, rep)
			return nil
		}
	}
	return e.writeCoerced(n, v, rep, observe) // converts, or reports the error
}

// leafString is writeLeaf of a string s into n, a string column.
func (e *fileEncoder) leafString(n *wnode, s string, rep int, observe bool) error {
	if !utf8.ValidString(s) {
		return schemaErr(n.path, "string is not valid UTF-8")
	}
	e.leafValidString(n, s, rep, observe)
	return nil
}

// leafValidString is leafString of s known to be valid UTF-8 (a string a
// jsonx.Reader read).
func (e *fileEncoder) leafValidString(n *wnode, s string, rep int, observe bool) {
	e.appendValue(n.col, parquet.ByteArrayValue(unsafeBytes(s)), rep, n.def)
	if observe {
		e.observeString(n.stat, s)
	}
}

// leafInt is writeLeaf of an integer x into n, a byte, short, integer or
// long column; false (nothing written) when x is out of the column's range.
func (e *fileEncoder) leafInt(n *wnode, x int64, rep int, observe bool) bool {
	lo, hi := intRange(n.typ.(PrimitiveType))
	if x < lo || x > hi {
		return false
	}
	if n.typ == TypeLong {
		e.appendValue(n.col, parquet.Int64Value(x), rep, n.def)
	} else {
		e.appendValue(n.col, parquet.Int32Value(int32(x)), rep, n.def)
	}
	if observe {
		e.observeInt(n.stat, x)
	}
	return true
}

// leafDouble is writeLeaf of f into n, a double column.
func (e *fileEncoder) leafDouble(n *wnode, f float64, rep int, observe bool) {
	e.appendValue(n.col, parquet.DoubleValue(f), rep, n.def)
	if observe {
		e.observeFloat(n.stat, f)
	}
}

// leafBool is writeLeaf of b into n, a boolean column.
func (e *fileEncoder) leafBool(n *wnode, b bool, rep int) {
	e.appendValue(n.col, parquet.BooleanValue(b), rep, n.def)
}

// appendValue appends v with its levels to column c. Setting the levels in
// place inlines, where Value.Level, which copies the value, does not.
func (e *fileEncoder) appendValue(c int, v parquet.Value, rep, def int) {
	vals := append(e.cols[c], v)
	p := &vals[len(vals)-1]
	p.SetRepetitionLevel(rep)
	p.SetDefinitionLevel(def)
	p.SetColumnIndex(c)
	e.cols[c] = vals
}

func (e *fileEncoder) writeCoerced(n *wnode, v any, rep int, observe bool) error {
	pv, err := encodeLeaf(n, v, e.casts[n.path])
	if err != nil {
		return err
	}
	e.appendValue(n.col, pv, rep, n.def)
	if observe {
		switch n.typ {
		case TypeString:
			e.observeString(n.stat, string(pv.ByteArray()))
		case TypeFloat:
			e.observeFloat(n.stat, float64(pv.Float()))
		case TypeDouble:
			e.observeFloat(n.stat, pv.Double())
		default:
			if pv.Kind() == parquet.Int32 {
				e.observeInt(n.stat, int64(pv.Int32()))
			} else {
				e.observeInt(n.stat, pv.Int64())
			}
		}
	}
	return nil
}
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// encodeLeaf converts a Go value to the Parquet value of a leaf column.
func encodeLeaf(n *wnode, v any, cast Cast) (parquet.Value, error) {
	c, err := castValue(n.typ, v, n.path, cast)
	if err != nil {
		return parquet.Value{}, err
	}
	switch x := c.(type) {
	case string:
		if !utf8.ValidString(x) {
			return parquet.Value{}, schemaErr(n.path, "string is not valid UTF-8")
		}
		return parquet.ByteArrayValue(unsafeBytes(x)), nil
	case []byte:
		return parquet.ByteArrayValue(x), nil
	case bool:
		return parquet.BooleanValue(x), nil
	case int8:
		return parquet.Int32Value(int32(x)), nil
	case int16:
		return parquet.Int32Value(int32(x)), nil
	case int32:
		return parquet.Int32Value(x), nil
	case int64:
		return parquet.Int64Value(x), nil
	case float32:
		return parquet.FloatValue(x), nil
	case float64:
		return parquet.DoubleValue(x), nil
	case time.Time:
		if n.typ == TypeDate {
			return parquet.Int32Value(int32(x.Unix() / 86400)), nil
		}
		return parquet.Int64Value(x.UnixMicro()), nil
	case Decimal:
		dt := n.typ.(*DecimalType)
		switch {
		case dt.Precision <= 9:
			return parquet.Int32Value(int32(x.Unscaled.Int64())), nil
		case dt.Precision <= 18:
			return parquet.Int64Value(x.Unscaled.Int64()), nil
		}
		return parquet.FixedLenByteArrayValue(decimalBytes(x.Unscaled, n.decLen)), nil
	}
	return parquet.Value{}, conflict(n.typ, v, n.path, "")
}

// rowsPerWrite bounds the rows handed to a column writer at once: a page is
// flushed between calls once it holds PageBufferSize bytes.
const rowsPerWrite = 1024

// flushRows is how many shredded rows an encoder holds before it hands them
// to the Parquet writer's column buffers: few enough that the values are
// still in cache (and that the blocks parallel shredding holds stay small:
// 512 held 20–40 MB more at peak in kpipe bench), enough to amortise a call
// per column.
const flushRows = 256

// flush hands the shredded rows to the Parquet writer (created on first
// use) and empties the columns for the next rows.
func (e *fileEncoder) flush() error {
	if e.w == nil {
		p := e.plan
		out := e.spool.out
		if out == nil {
			e.buf = bytes.NewBuffer(make([]byte, 0, max(4096, p.sizeHint.Load()*9/8)))
			out = e.buf
		}
		e.wkey = writerKey{p.layout(e.chooseDictionary()), e.spool.pageBytes}
		e.w = p.writer(e.wkey, out)
	}
	if err := e.writeColumns(e.w); err != nil {
		return fmt.Errorf("encoding parquet: %w", err)
	}
	if o := e.spool; o.rowGroupRows > 0 && e.n-e.rgRows >= o.rowGroupRows || o.rowGroupRows == 0 && o.rowGroupBytes > 0 && e.w.Size()-e.rgStart >= o.rowGroupBytes {
		if err := e.w.Flush(); err != nil {
			return fmt.Errorf("encoding parquet: %w", err)
		}
		e.rgRows, e.rgStart = e.n, e.w.Size()
	}
	for c, vals := range e.cols {
		clear(vals) // unpin the rows' strings
		e.cols[c] = vals[:0]
	}
	return nil
}

// encode writes the rows not yet flushed and returns the zstd-compressed
// Parquet file (nil when spooled: the file is in spoolTo's writer).
func (e *fileEncoder) encode() (data []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			data, err = nil, filePanic(p)
		}
	}()
	if err := e.flush(); err != nil {
		return nil, err
	}
	if err := e.w.Close(); err != nil {
		return nil, fmt.Errorf("encoding parquet: %w", err)
	}
	if o := e.spool; o.out == nil && o.pageBytes == 0 && o.rowGroupRows == 0 && o.rowGroupBytes == 0 {
		// Only the writers of commits' files are kept: a rewrite's
		// writer grew buffers for larger pages and row groups, and
		// rewrites are rare.
		e.plan.putWriter(e.wkey, e.w)
	}
	e.w = nil
	if e.spool.out != nil {
		return nil, nil
	}
	data = e.buf.Bytes()
	e.plan.sizeHint.Store(int64(len(data)))
	return data, nil
}

//lint:ignore SA1019 see fileEncoder.w
func (e *fileEncoder) writeColumns(w *parquet.Writer) error {
	cws := w.ColumnWriters()
	if len(cws) != len(e.cols) {
		return fmt.Errorf("internal error: %d column writers for %d columns", len(cws), len(e.cols))
	}
	for c, vals := range e.cols {
		for len(vals) > 0 {
			end := min(rowsPerWrite, len(vals))
			if e.plan.repeated[c] {
				// Cut at a row start (repetition level 0).
				rows := 0
				end = len(vals)
				for i := 1; i < len(vals); i++ {
					if vals[i].RepetitionLevel() == 0 {
						if rows++; rows == rowsPerWrite {
							end = i
							break
						}
					}
				}
			}
			if _, err := cws[c].WriteRowValues(vals[:end]); err != nil {
				return err
			}
			vals = vals[end:]
		}
	}
	return nil
}
