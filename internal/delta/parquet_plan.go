package delta

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

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
	kind nodeKind
	// name is the field's name in rows (the logical name); pname is its
	// name in the Parquet file (the physical name under column mapping)
	// and fid its Parquet field_id (0: none).
	name     string
	pname    string
	fid      int
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
	// index: a struct node's field positions by name (fieldIndex).
	index map[string]int
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
	// leafNodes[c] is the Parquet node of leaf column c.
	leafNodes []parquet.Node
	nscratch  int
	// statTree is the stats paths as a tree with children sorted by name,
	// the key order encoding/json gives the maps of the stats JSON.
	statTree *statNode

	// encoders are reused across files of this plan.
	encoders sync.Pool // *fileEncoder
	// sizeHint is the last file's size, to presize the output buffer.
	sizeHint atomic.Int64
	// layouts are the Parquet schemas by dictionary choice (see
	// parquet_layout.go), built on first use.
	layouts sync.Map // string -> *parquet.Schema
	// idle are Parquet writers of finished files, oldest first, to Reset
	// for the next file of the same layout and page size (writer).
	idleMu sync.Mutex
	idle   []idleWriter
	// dictSeen are the sets chooseDictionary counts distinct values in.
	dictSeen sync.Pool // map[uint64]struct{}
	// memo is the struct memo of Appends with StableMaps.
	memo structMemo
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
	return newMappedWritePlan(data, numIndexedCols, "")
}

// newMappedWritePlan is newWritePlan for a table whose column mapping mode
// is mode ("", "none", "name" or "id"): under name and id mode the Parquet
// columns and the stats are named by physical name and carry field ids.
func newMappedWritePlan(data *StructType, numIndexedCols int, mode string, forced ...[]string) (*writePlan, error) {
	// Levels beyond a byte panic inside parquet-go: refuse the schema first.
	if err := checkLevels(data); err != nil {
		return nil, err
	}
	p := &writePlan{}
	p.dictSeen.New = func() any { return make(map[uint64]struct{}, dictSample) }
	b := &planBuilder{p: p, numIndexedCols: numIndexedCols, mapped: mode == "name" || mode == "id", forced: map[string]bool{}}
	for _, f := range forced {
		b.forced[strings.Join(f, "\x00")] = true
	}
	root := &wnode{kind: kindStruct, stat: -1}
	g := orderedGroup{}
	for _, f := range data.Fields {
		c, cn, err := b.buildField(f, f.Name, 0, 0, true, nil)
		if err != nil {
			return nil, err
		}
		root.fields = append(root.fields, c)
		g.fields = append(g.fields, namedNode{cn, c.pname})
	}
	root.hi = b.col
	root.scr = p.nscratch
	p.nscratch += len(root.fields)
	p.root, p.ncols = root, b.col
	p.statTree = newStatTree(p.stats)
	p.schema = parquet.NewSchema("spark_schema", g)
	if got := len(p.schema.Columns()); got != b.col {
		return nil, fmt.Errorf("delta: internal error: parquet schema has %d columns, plan %d", got, b.col)
	}
	return p, nil
}

// planBuilder builds the column tree of a writePlan. col counts the leaf
// columns planned so far; leafIdx counts the columns that are candidates
// for stats (leaves, lists and maps outside repeated groups), in schema
// order, against numIndexedCols (delta.dataSkippingNumIndexedCols).
type planBuilder struct {
	p              *writePlan
	numIndexedCols int
	col, leafIdx   int
	// mapped: column mapping (name or id mode) is on.
	mapped bool
	// forced are stats paths (physical names joined by NUL) that get stats
	// whatever numIndexedCols says: the clustering columns.
	forced map[string]bool
}

// buildField plans struct field f at path: build, under the field's
// physical name and id when column mapping is on.
func (b *planBuilder) buildField(f *StructField, path string, def, rep int, statOK bool, statPath []string) (*wnode, parquet.Node, error) {
	pname, fid := f.Name, 0
	if b.mapped {
		var err error
		if pname, fid, err = physicalOf(f, path); err != nil {
			return nil, nil, err
		}
	}
	n, node, err := b.buildNamed(f.Name, pname, path, f.Type, f.Nullable, def, rep, statOK, statPath)
	if err != nil {
		return nil, nil, err
	}
	n.fid = fid
	if fid > 0 {
		node = parquet.FieldID(node, fid)
	}
	return n, node, nil
}

// build plans the column name (path in errors) of type t and returns its
// node and its Parquet node. def and rep are the parent's levels; statOK
// is whether the column may have stats, statPath the path of its parent in
// the stats JSON.
func (b *planBuilder) build(name, path string, t DataType, nullable bool, def, rep int, statOK bool, statPath []string) (*wnode, parquet.Node, error) {
	return b.buildNamed(name, name, path, t, nullable, def, rep, statOK, statPath)
}

// buildNamed is build of a column whose Parquet (and stats) name is pname.
func (b *planBuilder) buildNamed(name, pname, path string, t DataType, nullable bool, def, rep int, statOK bool, statPath []string) (*wnode, parquet.Node, error) {
	n := &wnode{name: name, pname: pname, path: path, typ: t, nullable: nullable, stat: -1}
	if nullable {
		def++
	}
	n.def = def
	n.lo = b.col
	var node parquet.Node
	var err error
	sp := append(append([]string(nil), statPath...), pname)
	switch t := t.(type) {
	case *StructType:
		node, err = b.buildStruct(n, t, def, rep, statOK, sp)
	case *ArrayType:
		node, err = b.buildList(n, t, def, rep, statOK, sp)
	case *MapType:
		node, err = b.buildMap(n, t, def, rep, statOK, sp)
	default:
		node, err = b.buildLeaf(n, t, rep, statOK, sp)
	}
	if err != nil {
		return nil, nil, err
	}
	n.hi = b.col
	if nullable {
		node = parquet.Optional(node)
	} else {
		node = parquet.Required(node)
	}
	return n, node, nil
}

func (b *planBuilder) buildStruct(n *wnode, t *StructType, def, rep int, statOK bool, sp []string) (parquet.Node, error) {
	n.kind = kindStruct
	if len(t.Fields) == 0 {
		return nil, fmt.Errorf("column %q: a struct needs at least one field", n.path)
	}
	g := orderedGroup{}
	for _, f := range t.Fields {
		c, cn, err := b.buildField(f, joinPath(n.path, f.Name), def, rep, statOK, sp)
		if err != nil {
			return nil, err
		}
		n.fields = append(n.fields, c)
		n.statsIn = append(n.statsIn, c.statsIn...)
		if n.index == nil {
			n.index = make(map[string]int, len(t.Fields))
		}
		n.index[c.name] = len(n.fields) - 1
		g.fields = append(g.fields, namedNode{cn, c.pname})
	}
	n.scr = b.p.nscratch
	b.p.nscratch += len(n.fields)
	return g, nil
}

func (b *planBuilder) buildList(n *wnode, t *ArrayType, def, rep int, statOK bool, sp []string) (parquet.Node, error) {
	n.kind = kindList
	n.rdef, n.rrep = def+1, rep+1
	if b.indexed(statOK, sp) {
		b.addStat(n, sp, t) // null counts only
	}
	b.leafIdx++
	e, en, err := b.build("element", n.path+"[]", t.ElementType, t.ContainsNull, n.rdef, n.rrep, false, nil)
	if err != nil {
		return nil, err
	}
	n.elem = e
	return parquet.List(en), nil
}

func (b *planBuilder) buildMap(n *wnode, t *MapType, def, rep int, statOK bool, sp []string) (parquet.Node, error) {
	n.kind = kindMap
	n.rdef, n.rrep = def+1, rep+1
	if b.indexed(statOK, sp) {
		b.addStat(n, sp, t) // null counts only
	}
	b.leafIdx++
	k, kn, err := b.build("key", n.path+".key", t.KeyType, false, n.rdef, n.rrep, false, nil)
	if err != nil {
		return nil, err
	}
	v, vn, err := b.build("value", n.path+".value", t.ValueType, t.ValueContainsNull, n.rdef, n.rrep, false, nil)
	if err != nil {
		return nil, err
	}
	n.key, n.val = k, v
	return parquet.Map(kn, vn), nil
}

func (b *planBuilder) buildLeaf(n *wnode, t DataType, rep int, statOK bool, sp []string) (parquet.Node, error) {
	n.kind = kindLeaf
	n.col = b.col
	b.col++
	b.p.repeated = append(b.p.repeated, rep > 0)
	node, decLen, err := leafNode(t)
	if err != nil {
		return nil, fmt.Errorf("column %q: %w", n.path, err)
	}
	n.decLen = decLen
	b.p.leafNodes = append(b.p.leafNodes, node)
	if b.indexed(statOK, sp) {
		if statEligible(t) {
			n.observe = true
			b.addStat(n, sp, t)
		} else {
			b.addStat(n, sp, nil) // null counts only (boolean, binary, decimal)
		}
	}
	b.leafIdx++
	return node, nil
}

// indexed reports whether the next stats candidate gets stats.
func (b *planBuilder) indexed(statOK bool, sp []string) bool {
	return statOK && (b.leafIdx < b.numIndexedCols || b.forced[strings.Join(sp, "\x00")])
}

// addStat gives n a stats column at path sp; typ nil collects null counts
// only.
func (b *planBuilder) addStat(n *wnode, sp []string, typ DataType) {
	n.stat = len(b.p.stats)
	b.p.stats = append(b.p.stats, statCol{path: sp, typ: typ})
	n.statsIn = append(n.statsIn, n.stat)
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
