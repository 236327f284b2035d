package delta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
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
}

// writePlan encodes rows of one data schema to Parquet.
type writePlan struct {
	// ignore names top-level keys rows may carry that are not written
	// (partition columns).
	ignore map[string]bool
	root   *wnode
	schema *parquet.Schema
	ncols  int
	stats  []statCol
}

type statCol struct {
	path []string
	typ  DataType
}

func newWritePlan(data *StructType, numIndexedCols int) (*writePlan, error) {
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
			var err error
			if node, n.decLen, err = leafNode(t); err != nil {
				return nil, nil, fmt.Errorf("column %q: %w", path, err)
			}
			if statOK && leafIdx < numIndexedCols && statEligible(t) {
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
	p.root, p.ncols = root, col
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
	minS, maxS string
}

// fileEncoder shreds rows of one data file into Parquet rows and computes
// the file's statistics in the same pass.
type fileEncoder struct {
	plan  *writePlan
	cols  [][]parquet.Value
	stats []colStats
	rows  []parquet.Row
	arena []parquet.Value
	n     int64
}

func newFileEncoder(p *writePlan, capRows int) *fileEncoder {
	return &fileEncoder{
		plan:  p,
		cols:  make([][]parquet.Value, p.ncols),
		stats: make([]colStats, len(p.stats)),
		rows:  make([]parquet.Row, 0, capRows),
		arena: make([]parquet.Value, 0, capRows*p.ncols),
	}
}

// add shreds one row; on error nothing of the row is kept.
func (e *fileEncoder) add(row map[string]any) error {
	for i := range e.cols {
		e.cols[i] = e.cols[i][:0]
	}
	root := e.plan.root
	for k, v := range row {
		if v != nil && !root.hasField(k) && !e.plan.ignore[k] {
			return &SchemaError{Row: -1, Path: k, Reason: "column not in table schema", Err: errUnknownField}
		}
	}
	// A failed row fails the whole file, so stats may be updated as the
	// row is shredded.
	for _, f := range root.fields {
		if err := e.writeField(f, row[f.name], 0, 0, false); err != nil {
			return err
		}
	}
	start := len(e.arena)
	for _, c := range e.cols {
		e.arena = append(e.arena, c...)
	}
	e.rows = append(e.rows, parquet.Row(e.arena[start:len(e.arena):len(e.arena)]))
	e.n++
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

func (e *fileEncoder) writeNulls(n *wnode, rep, def int) {
	for c := n.lo; c < n.hi; c++ {
		e.cols[c] = append(e.cols[c], parquet.NullValue().Level(rep, def, c))
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
		pv, err := encodeLeaf(n, v)
		if err != nil {
			return err
		}
		e.cols[n.col] = append(e.cols[n.col], pv.Level(rep, n.def, n.col))
		if !inRep && n.stat >= 0 && e.plan.stats[n.stat].typ != nil {
			e.observe(n, pv)
		}
	case kindStruct:
		m, ok := v.(map[string]any)
		if !ok {
			return conflict(n.typ, v, n.path, "")
		}
		for k, x := range m {
			if x != nil && !n.hasField(k) {
				return &SchemaError{Row: -1, Path: joinPath(n.path, k), Reason: "field not in table schema", Err: errUnknownField}
			}
		}
		for _, f := range n.fields {
			if err := e.writeField(f, m[f.name], rep, n.def, inRep); err != nil {
				return err
			}
		}
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

// observe folds a leaf value into its column statistics.
func (e *fileEncoder) observe(n *wnode, pv parquet.Value) {
	s := &e.stats[n.stat]
	switch n.typ {
	case TypeString:
		str := pv.String()
		if !s.has || str < s.minS {
			s.minS = strings.Clone(str)
		}
		if !s.has || str > s.maxS {
			s.maxS = strings.Clone(str)
		}
	case TypeFloat, TypeDouble:
		var f float64
		if n.typ == TypeFloat {
			f = float64(pv.Float())
		} else {
			f = pv.Double()
		}
		if math.IsNaN(f) {
			s.bad = true
		}
		if !s.has || f < s.minF {
			s.minF = f
		}
		if !s.has || f > s.maxF {
			s.maxF = f
		}
	default:
		var x int64
		switch pv.Kind() {
		case parquet.Int32:
			x = int64(pv.Int32())
		default:
			x = pv.Int64()
		}
		if !s.has || x < s.minI {
			s.minI = x
		}
		if !s.has || x > s.maxI {
			s.maxI = x
		}
	}
	s.has = true
}

func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// encodeLeaf converts a Go value to the Parquet value of a leaf column.
func encodeLeaf(n *wnode, v any) (parquet.Value, error) {
	switch n.typ {
	case TypeString:
		if s, ok := v.(string); ok {
			if !utf8.ValidString(s) {
				return parquet.Value{}, schemaErr(n.path, "string is not valid UTF-8")
			}
			return parquet.ByteArrayValue(unsafeBytes(s)), nil
		}
	case TypeLong:
		switch x := v.(type) {
		case int64:
			return parquet.Int64Value(x), nil
		case int:
			return parquet.Int64Value(int64(x)), nil
		}
	case TypeTimestamp, TypeTimestampNTZ:
		if t, ok := v.(time.Time); ok {
			return parquet.Int64Value(t.UnixMicro()), nil
		}
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			return parquet.BooleanValue(b), nil
		}
	case TypeDouble:
		if f, ok := v.(float64); ok {
			return parquet.DoubleValue(f), nil
		}
	}
	c, err := coerceValue(n.typ, v, n.path)
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

// encode writes the shredded rows as a zstd-compressed Parquet file.
func (e *fileEncoder) encode() ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, e.plan.schema,
		parquet.Compression(&parquet.Zstd),
		parquet.CreatedBy("kpipe", Version, ""),
		parquet.PageBufferSize(1<<20),
	)
	for i := 0; i < len(e.rows); i += 4096 {
		j := min(i+4096, len(e.rows))
		if _, err := w.WriteRows(e.rows[i:j]); err != nil {
			return nil, fmt.Errorf("encoding parquet: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encoding parquet: %w", err)
	}
	return buf.Bytes(), nil
}

const statsStringPrefix = 32

// statsJSON returns the file's statistics JSON.
func (e *fileEncoder) statsJSON() string {
	minV, maxV, nulls := map[string]any{}, map[string]any{}, map[string]any{}
	put := func(m map[string]any, path []string, v any) {
		for _, p := range path[:len(path)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[path[len(path)-1]] = v
	}
	for i, sc := range e.plan.stats {
		s := &e.stats[i]
		put(nulls, sc.path, s.nulls)
		if !s.has || s.bad || sc.typ == nil {
			continue
		}
		var lo, hi any
		switch sc.typ {
		case TypeString:
			lo, hi = truncMin(s.minS), truncMax(s.maxS)
			if hi == nil {
				put(minV, sc.path, lo)
				continue
			}
		case TypeFloat, TypeDouble:
			if math.IsInf(s.minF, 0) || math.IsInf(s.maxF, 0) {
				continue
			}
			lo, hi = s.minF, s.maxF
		case TypeTimestamp, TypeTimestampNTZ:
			lo, hi = formatStatTime(s.minI, sc.typ), formatStatTime(s.maxI, sc.typ)
		case TypeDate:
			lo = time.Unix(s.minI*86400, 0).UTC().Format("2006-01-02")
			hi = time.Unix(s.maxI*86400, 0).UTC().Format("2006-01-02")
		default:
			lo, hi = s.minI, s.maxI
		}
		put(minV, sc.path, lo)
		put(maxV, sc.path, hi)
	}
	out := map[string]any{"numRecords": e.n, "minValues": minV, "maxValues": maxV, "nullCount": nulls}
	b, _ := json.Marshal(out)
	return string(b)
}

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
