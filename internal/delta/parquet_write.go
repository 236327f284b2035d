package delta

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"
)

// orderedGroup is a Parquet group that keeps its fields in the given order
// (parquet.Group sorts them by name), so files list columns in schema order.
type orderedGroup struct{ fields []parquet.Field }

type namedNode struct {
	parquet.Node
	name string
}

func (f namedNode) Name() string                           { return f.name }
func (f namedNode) Value(base reflect.Value) reflect.Value { return reflect.Value{} }

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return "group" }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g.fields }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }

type nodeKind uint8

const (
	kindLeaf nodeKind = iota
	kindStruct
	kindList
	kindMap
)

// wnode is the write plan of one column: its levels and leaf range.
type wnode struct {
	kind     nodeKind
	name     string
	path     string
	typ      DataType
	nullable bool
	def      int // definition level when present
	rdef     int // list/map: definition level of a present element
	rrep     int // list/map: repetition level of the repeated group
	fields   []*wnode
	elem     *wnode
	key, val *wnode
	col      int
	lo, hi   int
	stat     int   // index into stats, -1 when not collected
	statsIn  []int // stats of this node and its struct descendants
	decLen   int
	// observe: a leaf whose min/max are collected (outside repeated groups).
	observe bool
	// scr: struct nodes' offset into fileEncoder.scratch (one slot per field).
	scr int
}

// writePlan encodes rows of one data schema to Parquet.
type writePlan struct {
	// ignore names top-level keys rows may carry that are not written
	// (partition columns); set with setIgnore.
	ignore     map[string]bool
	ignoreKeys []string
	root       *wnode
	schema     *parquet.Schema
	ncols      int
	stats      []statCol
	// repeated[c] is whether leaf column c is inside a list or map.
	repeated []bool
	nscratch int
	// statTree is the stats paths as a tree with children sorted by name,
	// the key order encoding/json gives the maps of the stats JSON.
	statTree *statNode

	// encoders are reused across files of this plan.
	encoders sync.Pool // *fileEncoder
	// sizeHint is the last file's size, to presize the output buffer.
	sizeHint atomic.Int64
}

func (p *writePlan) setIgnore(keys []string) {
	p.ignoreKeys = keys
	p.ignore = make(map[string]bool, len(keys))
	for _, k := range keys {
		p.ignore[k] = true
	}
}

type statCol struct {
	path []string
	typ  DataType
}

func newWritePlan(data *StructType, numIndexedCols int) (*writePlan, error) {
	// Levels beyond a byte panic inside parquet-go: refuse the schema first.
	if err := checkLevels(data); err != nil {
		return nil, err
	}
	p := &writePlan{}
	col := 0
	leafIdx := 0
	var build func(name, path string, t DataType, nullable bool, def, rep int, statOK bool, statPath []string) (*wnode, parquet.Node, error)
	build = func(name, path string, t DataType, nullable bool, def, rep int, statOK bool, statPath []string) (*wnode, parquet.Node, error) {
		n := &wnode{name: name, path: path, typ: t, nullable: nullable, stat: -1}
		if nullable {
			def++
		}
		n.def = def
		n.lo = col
		var node parquet.Node
		sp := append(append([]string(nil), statPath...), name)
		switch t := t.(type) {
		case *StructType:
			n.kind = kindStruct
			if len(t.Fields) == 0 {
				return nil, nil, fmt.Errorf("column %q: a struct needs at least one field", path)
			}
			g := orderedGroup{}
			for _, f := range t.Fields {
				c, cn, err := build(f.Name, joinPath(path, f.Name), f.Type, f.Nullable, def, rep, statOK, sp)
				if err != nil {
					return nil, nil, err
				}
				n.fields = append(n.fields, c)
				n.statsIn = append(n.statsIn, c.statsIn...)
				g.fields = append(g.fields, namedNode{cn, f.Name})
			}
			n.scr = p.nscratch
			p.nscratch += len(n.fields)
			node = g
		case *ArrayType:
			n.kind = kindList
			n.rdef, n.rrep = def+1, rep+1
			if statOK && leafIdx < numIndexedCols {
				n.stat = len(p.stats)
				p.stats = append(p.stats, statCol{path: sp, typ: t})
				n.statsIn = append(n.statsIn, n.stat)
			}
			leafIdx++
			e, en, err := build("element", path+"[]", t.ElementType, t.ContainsNull, n.rdef, n.rrep, false, nil)
			if err != nil {
				return nil, nil, err
			}
			n.elem = e
			node = parquet.List(en)
		case *MapType:
			n.kind = kindMap
			n.rdef, n.rrep = def+1, rep+1
			if statOK && leafIdx < numIndexedCols {
				n.stat = len(p.stats)
				p.stats = append(p.stats, statCol{path: sp, typ: t})
				n.statsIn = append(n.statsIn, n.stat)
			}
			leafIdx++
			k, kn, err := build("key", path+".key", t.KeyType, false, n.rdef, n.rrep, false, nil)
			if err != nil {
				return nil, nil, err
			}
			v, vn, err := build("value", path+".value", t.ValueType, t.ValueContainsNull, n.rdef, n.rrep, false, nil)
			if err != nil {
				return nil, nil, err
			}
			n.key, n.val = k, v
			node = parquet.Map(kn, vn)
		default:
			n.kind = kindLeaf
			n.col = col
			col++
			p.repeated = append(p.repeated, rep > 0)
			var err error
			if node, n.decLen, err = leafNode(t); err != nil {
				return nil, nil, fmt.Errorf("column %q: %w", path, err)
			}
			if statOK && leafIdx < numIndexedCols && statEligible(t) {
				n.observe = true
				n.stat = len(p.stats)
				p.stats = append(p.stats, statCol{path: sp, typ: t})
				n.statsIn = append(n.statsIn, n.stat)
			} else if statOK && leafIdx < numIndexedCols {
				// Null counts only (boolean, binary, decimal).
				n.stat = len(p.stats)
				p.stats = append(p.stats, statCol{path: sp, typ: nil})
				n.statsIn = append(n.statsIn, n.stat)
			}
			leafIdx++
		}
		n.hi = col
		if nullable {
			node = parquet.Optional(node)
		} else {
			node = parquet.Required(node)
		}
		return n, node, nil
	}
	root := &wnode{kind: kindStruct, stat: -1}
	g := orderedGroup{}
	for _, f := range data.Fields {
		c, cn, err := build(f.Name, f.Name, f.Type, f.Nullable, 0, 0, true, nil)
		if err != nil {
			return nil, err
		}
		root.fields = append(root.fields, c)
		g.fields = append(g.fields, namedNode{cn, f.Name})
	}
	root.hi = col
	root.scr = p.nscratch
	p.nscratch += len(root.fields)
	p.root, p.ncols = root, col
	p.statTree = newStatTree(p.stats)
	p.schema = parquet.NewSchema("spark_schema", g)
	if got := len(p.schema.Columns()); got != col {
		return nil, fmt.Errorf("delta: internal error: parquet schema has %d columns, plan %d", got, col)
	}
	return p, nil
}

func statEligible(t DataType) bool {
	switch t {
	case TypeString, TypeLong, TypeInteger, TypeShort, TypeByte, TypeFloat, TypeDouble, TypeDate, TypeTimestamp, TypeTimestampNTZ:
		return true
	}
	return false
}

func leafNode(t DataType) (parquet.Node, int, error) {
	switch t := t.(type) {
	case *DecimalType:
		switch {
		case t.Precision <= 9:
			return parquet.Decimal(t.Scale, t.Precision, parquet.Int32Type), 0, nil
		case t.Precision <= 18:
			return parquet.Decimal(t.Scale, t.Precision, parquet.Int64Type), 0, nil
		}
		n := decimalByteLen(t.Precision)
		return parquet.Decimal(t.Scale, t.Precision, parquet.FixedLenByteArrayType(n)), n, nil
	case PrimitiveType:
		switch t {
		case TypeString:
			return parquet.String(), 0, nil
		case TypeBinary:
			return parquet.Leaf(parquet.ByteArrayType), 0, nil
		case TypeBoolean:
			return parquet.Leaf(parquet.BooleanType), 0, nil
		case TypeByte:
			return parquet.Int(8), 0, nil
		case TypeShort:
			return parquet.Int(16), 0, nil
		case TypeInteger:
			return parquet.Int(32), 0, nil
		case TypeLong:
			return parquet.Int(64), 0, nil
		case TypeFloat:
			return parquet.Leaf(parquet.FloatType), 0, nil
		case TypeDouble:
			return parquet.Leaf(parquet.DoubleType), 0, nil
		case TypeDate:
			return parquet.Date(), 0, nil
		case TypeTimestamp:
			return parquet.Timestamp(parquet.Microsecond), 0, nil
		case TypeTimestampNTZ:
			return parquet.TimestampAdjusted(parquet.Microsecond, false), 0, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: writing type %s", ErrUnsupportedFeature, t)
}

// colStats accumulates one column's statistics.
type colStats struct {
	nulls      int64
	has        bool
	bad        bool // NaN seen: no min/max
	minI, maxI int64
	minF, maxF float64
	// minS and maxS refer to the rows' own strings (Go strings are
	// immutable), so collecting them does not copy.
	minS, maxS string
}

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
	n       int64
	// w writes the file into buf; rows are flushed to it every flushRows.
	//lint:ignore SA1019 the untyped Writer takes a schema built at run time from the Delta schema; GenericWriter needs a Go type.
	w   *parquet.Writer
	buf *bytes.Buffer
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
	e.n = 0
	e.w, e.buf = nil, nil
}

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
		for k, x := range m {
			if n.hasField(k) || untypeable(x) {
				continue
			}
			if root {
				if !e.plan.ignore[k] {
					return &SchemaError{Row: -1, Path: k, Reason: "column not in table schema", Err: errUnknownField}
				}
				continue
			}
			return &SchemaError{Row: -1, Path: joinPath(n.path, k), Reason: "field not in table schema", Err: errUnknownField}
		}
	}
	for i, f := range n.fields {
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
	var pv parquet.Value
	switch n.typ {
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return e.writeCoerced(n, v, rep, observe)
		}
		if !utf8.ValidString(s) {
			return schemaErr(n.path, "string is not valid UTF-8")
		}
		pv = parquet.ByteArrayValue(unsafeBytes(s))
		if observe {
			e.observeString(n.stat, s)
		}
	case TypeLong, TypeInteger, TypeShort, TypeByte:
		x, ok, err := toInt64(v)
		lo, hi := intRange(n.typ.(PrimitiveType))
		if !ok || err != nil || x < lo || x > hi {
			return e.writeCoerced(n, v, rep, observe) // reports the error
		}
		if n.typ == TypeLong {
			pv = parquet.Int64Value(x)
		} else {
			pv = parquet.Int32Value(int32(x))
		}
		if observe {
			e.observeInt(n.stat, x)
		}
	case TypeTimestamp, TypeTimestampNTZ:
		t, ok := v.(time.Time)
		if !ok {
			return e.writeCoerced(n, v, rep, observe)
		}
		// UnixMicro rounds down, as Truncate(time.Microsecond) does.
		x := t.UnixMicro()
		pv = parquet.Int64Value(x)
		if observe {
			e.observeInt(n.stat, x)
		}
	case TypeDouble:
		f, ok := v.(float64)
		if !ok {
			return e.writeCoerced(n, v, rep, observe)
		}
		pv = parquet.DoubleValue(f)
		if observe {
			e.observeFloat(n.stat, f)
		}
	case TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return e.writeCoerced(n, v, rep, observe)
		}
		pv = parquet.BooleanValue(b)
	default:
		return e.writeCoerced(n, v, rep, observe)
	}
	e.appendValue(n.col, pv, rep, n.def)
	return nil
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

func (e *fileEncoder) observeString(stat int, str string) {
	s := &e.stats[stat]
	if !s.has || str < s.minS {
		s.minS = str
	}
	if !s.has || str > s.maxS {
		s.maxS = str
	}
	s.has = true
}

func (e *fileEncoder) observeFloat(stat int, f float64) {
	s := &e.stats[stat]
	if math.IsNaN(f) {
		s.bad = true
	}
	if !s.has || f < s.minF {
		s.minF = f
	}
	if !s.has || f > s.maxF {
		s.maxF = f
	}
	s.has = true
}

func (e *fileEncoder) observeInt(stat int, x int64) {
	s := &e.stats[stat]
	if !s.has || x < s.minI {
		s.minI = x
	}
	if !s.has || x > s.maxI {
		s.maxI = x
	}
	s.has = true
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

// zstdCodec compresses data pages. SpeedFastest compresses these columns
// nearly as well as the default level at a fraction of the CPU; one
// goroutine per page keeps the codec's encoders small.
var zstdCodec = &zstd.Codec{Level: zstd.SpeedFastest, Concurrency: 1}

// rowsPerWrite bounds the rows handed to a column writer at once: a page is
// flushed between calls once it holds PageBufferSize bytes.
const rowsPerWrite = 1024

// flushRows is how many shredded rows an encoder holds before it hands them
// to the Parquet writer's column buffers: few enough that the values are
// still in cache, enough to amortise a call per column.
const flushRows = 512

// flush hands the shredded rows to the Parquet writer (created on first
// use) and empties the columns for the next rows.
func (e *fileEncoder) flush() error {
	if e.w == nil {
		p := e.plan
		e.buf = bytes.NewBuffer(make([]byte, 0, max(4096, p.sizeHint.Load()*9/8)))
		// A Writer is not reused: after a second Reset, parquet-go v0.32.0
		// writes footers whose column chunks have an empty path_in_schema.
		e.w = parquet.NewWriter(e.buf, p.schema,
			parquet.Compression(zstdCodec),
			parquet.CreatedBy("kpipe", Version, ""),
			parquet.PageBufferSize(1<<20),
		)
	}
	if err := e.writeColumns(e.w); err != nil {
		return fmt.Errorf("encoding parquet: %w", err)
	}
	for c, vals := range e.cols {
		clear(vals) // unpin the rows' strings
		e.cols[c] = vals[:0]
	}
	return nil
}

// encode writes the rows not yet flushed and returns the zstd-compressed
// Parquet file.
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

// statsStringPrefix is the number of code points of a string kept in its
// min/max statistics.
const statsStringPrefix = 32

func formatStatTime(micros int64, t DataType) string {
	ms := micros / 1000
	if micros%1000 < 0 {
		ms--
	}
	ts := time.UnixMilli(ms).UTC()
	if t == TypeTimestampNTZ {
		return ts.Format("2006-01-02T15:04:05.000")
	}
	return ts.Format("2006-01-02T15:04:05.000Z07:00")
}

func truncMin(s string) string {
	if utf8.RuneCountInString(s) <= statsStringPrefix {
		return s
	}
	i, n := 0, 0
	for n < statsStringPrefix {
		_, sz := utf8.DecodeRuneInString(s[i:])
		i += sz
		n++
	}
	return s[:i]
}

// truncMax returns an upper bound for s no longer than the prefix plus one
// maximal code point; nil when no short bound exists.
func truncMax(s string) any {
	p := truncMin(s)
	if p == s {
		return s
	}
	r, _ := utf8.DecodeRuneInString(s[len(p):])
	if r == utf8.MaxRune {
		return nil
	}
	return p + string(utf8.MaxRune)
}
