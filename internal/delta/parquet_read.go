package delta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// pnode is a node of a Parquet file's schema tree, with its levels.
type pnode struct {
	name     string
	rep      format.FieldRepetitionType
	elem     format.SchemaElement
	leaf     bool
	ptype    format.Type
	children []*pnode
	col      int // leaf column index
	lo, hi   int // leaf column range
	maxDef   int
	maxRep   int
	// mode is the table's column mapping mode, by which fieldChild
	// resolves fields (see setMappingMode).
	mode string
}

// setMappingMode sets the column mapping mode of n and its descendants.
func (n *pnode) setMappingMode(mode string) {
	n.mode = mode
	for _, c := range n.children {
		c.setMappingMode(mode)
	}
}

// fieldChild returns the child of n holding field f: by field_id in id
// mode, by physical name in name mode, by name otherwise (PROTOCOL.md,
// "Reader Requirements for Column Mapping"); nil when the file lacks it.
func (n *pnode) fieldChild(f *StructField) *pnode {
	switch n.mode {
	case "id":
		if id := fieldID(f); id > 0 {
			for _, c := range n.children {
				if int(c.elem.FieldID) == id {
					return c
				}
			}
			return nil
		}
	case "name":
		if pn, _ := f.Metadata[metaPhysicalName].(string); pn != "" {
			for _, c := range n.children {
				if c.name == pn {
					return c
				}
			}
			return nil
		}
	}
	return n.child(f.Name)
}

func (n *pnode) child(name string) *pnode {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	for _, c := range n.children {
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	return nil
}

// buildPTree builds the schema tree from the flattened schema elements.
func buildPTree(elems []format.SchemaElement) (*pnode, error) {
	if len(elems) == 0 {
		return nil, fmt.Errorf("parquet file has no schema")
	}
	pos, col := 0, 0
	var build func(def, rep int, root bool) (*pnode, error)
	build = func(def, rep int, root bool) (*pnode, error) {
		if pos >= len(elems) {
			return nil, fmt.Errorf("truncated parquet schema")
		}
		e := elems[pos]
		pos++
		n := &pnode{name: e.Name, elem: e}
		if !root {
			n.rep, _ = e.RepetitionType.Get()
			switch n.rep {
			case format.Optional:
				def++
			case format.Repeated:
				def++
				rep++
			}
		}
		n.maxDef, n.maxRep = def, rep
		nc, hasChildren := e.NumChildren.Get()
		if t, ok := e.Type.Get(); ok && (!hasChildren || nc == 0) && !root {
			n.leaf, n.ptype = true, t
			n.col, n.lo, n.hi = col, col, col+1
			col++
			return n, nil
		}
		n.lo = col
		for range nc {
			c, err := build(def, rep, false)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, c)
		}
		n.hi = col
		return n, nil
	}
	return build(0, 0, true)
}

// levelVals holds, for one instance of a node, the values of each leaf
// column in the node's range [base, base+len(cols)).
type levelVals struct {
	base int
	cols [][]parquet.Value
}

func (v levelVals) col(i int) []parquet.Value { return v.cols[i-v.base] }

// readParquetRows reads every row of a Parquet file as a map typed by
// schema; columns missing from the file read as null.
func readParquetRows(data []byte, schema *StructType) ([]map[string]any, error) {
	return readMappedParquetRows(data, schema, "")
}

// readMappedParquetRows is readParquetRows for a table whose column
// mapping mode is mode.
func readMappedParquetRows(data []byte, schema *StructType, mode string) ([]map[string]any, error) {
	var out []map[string]any
	err := eachParquetRow(data, schema, mode, func(n int64) { out = make([]map[string]any, 0, n) }, func(m map[string]any) error {
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachParquetRow reads the rows of a Parquet file as readMappedParquetRows
// does, a few at a time, and calls fn with each in file order; a row is
// not referred to after fn returns. It calls size first, with the file's
// number of rows, if size is not nil. An error of fn stops the reading
// and is returned as it is.
func eachParquetRow(data []byte, schema *StructType, mode string, size func(int64), fn func(map[string]any) error) error {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("opening parquet: %w", err)
	}
	root, err := buildPTree(f.Metadata().Schema)
	if err != nil {
		return err
	}
	root.setMappingMode(mode)
	if size != nil {
		size(f.NumRows())
	}
	buf := make([]parquet.Row, 128)
	cols := make([][]parquet.Value, root.hi)
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, row := range buf[:n] {
				for i := range cols {
					cols[i] = cols[i][:0]
				}
				row.Range(func(ci int, vs []parquet.Value) bool {
					if ci < len(cols) {
						cols[ci] = vs
					}
					return true
				})
				m, aerr := readStruct(root, schema, levelVals{base: 0, cols: cols})
				if aerr == nil {
					aerr = fn(m)
				}
				if aerr != nil {
					rows.Close()
					return aerr
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				rows.Close()
				return fmt.Errorf("reading parquet rows: %w", err)
			}
			if n == 0 {
				break
			}
		}
		rows.Close()
	}
	return nil
}

func readStruct(n *pnode, t *StructType, vals levelVals) (map[string]any, error) {
	m := make(map[string]any, len(t.Fields))
	for _, f := range t.Fields {
		c := n.fieldChild(f)
		if c == nil {
			m[f.Name] = nil
			continue
		}
		v, err := readField(c, f.Type, vals)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		m[f.Name] = v
	}
	return m, nil
}

// present reports whether an instance of n (optional) is non-null.
func present(n *pnode, vals levelVals) bool {
	vs := vals.col(n.lo)
	return len(vs) > 0 && vs[0].DefinitionLevel() >= n.maxDef
}

func readField(n *pnode, t DataType, vals levelVals) (any, error) {
	if n.lo == n.hi { // empty group
		return nil, nil
	}
	switch n.rep {
	case format.Repeated:
		// A bare repeated field is a list of required elements.
		at, ok := t.(*ArrayType)
		if !ok {
			return nil, fmt.Errorf("repeated parquet field for %s column", t)
		}
		return readRepeated(n, vals, func(ev levelVals) (any, error) { return readValue(n, at.ElementType, ev) })
	case format.Optional:
		if !present(n, vals) {
			return nil, nil
		}
	}
	return readValue(n, t, vals)
}

// readRepeated splits the values of repeated node r into its elements.
func readRepeated(r *pnode, vals levelVals, elem func(levelVals) (any, error)) ([]any, error) {
	first := vals.col(r.lo)
	if len(first) == 0 || first[0].DefinitionLevel() < r.maxDef {
		return []any{}, nil
	}
	// Count elements from the first column: a new element starts at each
	// value whose repetition level equals r's.
	var out []any
	starts := make([]int, len(vals.cols)) // current position per column
	for {
		ev := levelVals{base: r.lo, cols: make([][]parquet.Value, r.hi-r.lo)}
		done := false
		for c := r.lo; c < r.hi; c++ {
			vs := vals.col(c)
			s := starts[c-vals.base]
			if s >= len(vs) {
				done = true
				break
			}
			e := s + 1
			for e < len(vs) && vs[e].RepetitionLevel() > r.maxRep {
				e++
			}
			ev.cols[c-r.lo] = vs[s:e]
			starts[c-vals.base] = e
		}
		if done {
			break
		}
		v, err := elem(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func readValue(n *pnode, t DataType, vals levelVals) (any, error) {
	if t == TypeVariant && !n.leaf {
		return readVariant(n, vals)
	}
	if n.leaf {
		vs := vals.col(n.col)
		if len(vs) == 0 || vs[0].IsNull() {
			return nil, nil
		}
		return convertLeaf(n, t, vs[0])
	}
	switch t := t.(type) {
	case *StructType:
		return readStruct(n, t, vals)
	case *ArrayType:
		if len(n.children) != 1 || n.children[0].rep != format.Repeated {
			return nil, fmt.Errorf("parquet group %q is not a list", n.name)
		}
		r := n.children[0]
		elemNode := r
		if !r.leaf && len(r.children) == 1 && r.name != "array" && r.name != n.name+"_tuple" {
			elemNode = r.children[0]
		}
		if elemNode == r {
			return readRepeated(r, vals, func(ev levelVals) (any, error) { return readValue(r, t.ElementType, ev) })
		}
		return readRepeated(r, vals, func(ev levelVals) (any, error) { return readField(elemNode, t.ElementType, ev) })
	case *MapType:
		if len(n.children) != 1 || n.children[0].rep != format.Repeated || len(n.children[0].children) < 1 {
			return nil, fmt.Errorf("parquet group %q is not a map", n.name)
		}
		kv := n.children[0]
		kn := kv.child("key")
		vn := kv.child("value")
		if kn == nil {
			kn = kv.children[0]
		}
		if vn == nil && len(kv.children) > 1 {
			vn = kv.children[1]
		}
		ms := map[string]any{}
		ma := map[any]any{}
		// Keys that are arrays, maps or structs cannot key a Go map: such
		// a map reads as its entries, [][2]any{{key, value}, ...}.
		var entries [][2]any
		_, primKeys := t.KeyType.(PrimitiveType)
		_, decKeys := t.KeyType.(*DecimalType)
		strKeys := primKeys && t.KeyType == TypeString
		entryKeys := !primKeys && !decKeys || t.KeyType == TypeBinary
		_, err := readRepeated(kv, vals, func(ev levelVals) (any, error) {
			k, err := readField(kn, t.KeyType, ev)
			if err != nil {
				return nil, err
			}
			var v any
			if vn != nil {
				if v, err = readField(vn, t.ValueType, ev); err != nil {
					return nil, err
				}
			}
			switch {
			case strKeys:
				ks, _ := k.(string)
				ms[ks] = v
			case entryKeys:
				entries = append(entries, [2]any{k, v})
			default:
				ma[k] = v
			}
			return nil, nil
		})
		if err != nil {
			return nil, err
		}
		if entryKeys {
			if entries == nil {
				entries = [][2]any{}
			}
			return entries, nil
		}
		if strKeys {
			return ms, nil
		}
		return ma, nil
	}
	return nil, fmt.Errorf("parquet group %q for %s column", n.name, t)
}

var unixEpochJulianDay = int64(2440588)

func convertLeaf(n *pnode, t DataType, v parquet.Value) (any, error) {
	mismatch := func() error {
		return fmt.Errorf("parquet %s column %q cannot be read as %s", n.ptype, n.name, t)
	}
	switch t := t.(type) {
	case PrimitiveType:
		switch t {
		case TypeString:
			if n.ptype == format.ByteArray || n.ptype == format.FixedLenByteArray {
				return string(v.ByteArray()), nil
			}
		case TypeBinary:
			if n.ptype == format.ByteArray || n.ptype == format.FixedLenByteArray {
				return bytes.Clone(v.ByteArray()), nil
			}
		case TypeBoolean:
			if n.ptype == format.Boolean {
				return v.Boolean(), nil
			}
		case TypeByte:
			if n.ptype == format.Int32 {
				return int8(v.Int32()), nil
			}
		case TypeShort:
			if n.ptype == format.Int32 {
				return int16(v.Int32()), nil
			}
		case TypeInteger:
			if n.ptype == format.Int32 {
				return v.Int32(), nil
			}
		case TypeLong:
			switch n.ptype {
			case format.Int64:
				return v.Int64(), nil
			case format.Int32:
				return int64(v.Int32()), nil
			}
		case TypeFloat:
			if n.ptype == format.Float {
				return v.Float(), nil
			}
		case TypeDouble:
			switch n.ptype {
			case format.Double:
				return v.Double(), nil
			case format.Float:
				return float64(v.Float()), nil
			case format.Int32: // type widening: byte, short, int -> double
				return float64(v.Int32()), nil
			}
		case TypeDate:
			if n.ptype == format.Int32 {
				return time.Unix(int64(v.Int32())*86400, 0).UTC(), nil
			}
		case TypeTimestamp, TypeTimestampNTZ:
			switch n.ptype {
			case format.Int32: // type widening: date -> timestamp_ntz
				if t == TypeTimestampNTZ {
					return time.Unix(int64(v.Int32())*86400, 0).UTC(), nil
				}
			case format.Int96:
				i := v.Int96()
				nanos := int64(uint64(i[0]) | uint64(i[1])<<32)
				days := int64(i[2]) - unixEpochJulianDay
				return time.Unix(days*86400, nanos).UTC(), nil
			case format.Int64:
				x := v.Int64()
				switch timeUnit(n.elem) {
				case 'm':
					return time.UnixMilli(x).UTC(), nil
				case 'n':
					return time.Unix(0, x).UTC(), nil
				}
				return time.UnixMicro(x).UTC(), nil
			}
		}
	case *DecimalType:
		// The file's scale: older files of a widened column (type
		// widening) have a smaller one, or are integers (scale 0).
		fs := fileDecimalScale(n)
		var u *big.Int
		switch n.ptype {
		case format.Int32:
			u = big.NewInt(int64(v.Int32()))
		case format.Int64:
			u = big.NewInt(v.Int64())
		case format.ByteArray, format.FixedLenByteArray:
			u = decimalFromBytes(v.ByteArray())
		}
		if u != nil {
			if fs >= 0 && fs < t.Scale {
				u.Mul(u, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale-fs)), nil))
			}
			return Decimal{Unscaled: u, Scale: t.Scale}, nil
		}
	}
	return nil, mismatch()
}

// timeUnit returns 'm', 'u' or 'n' for an INT64 timestamp column.
func timeUnit(e format.SchemaElement) byte {
	if ts, ok := e.LogicalType.Value.(*format.TimestampType); ok {
		switch ts.Unit.Value.(type) {
		case *format.MilliSeconds:
			return 'm'
		case *format.NanoSeconds:
			return 'n'
		}
		return 'u'
	}
	if ct, ok := e.ConvertedType.Get(); ok && ct == deprecated.TimestampMillis {
		return 'm'
	}
	return 'u'
}

// fileDecimalScale is the scale of a Parquet decimal column: 0 for an
// integer column, -1 when unknown (the table's scale is then assumed).
func fileDecimalScale(n *pnode) int {
	if d, ok := n.elem.LogicalType.Value.(*format.DecimalType); ok {
		return int(d.Scale)
	}
	if s, ok := n.elem.Scale.Get(); ok {
		return int(s)
	}
	if ct, ok := n.elem.ConvertedType.Get(); ok && ct == deprecated.Decimal {
		return 0
	}
	if n.ptype == format.Int32 || n.ptype == format.Int64 {
		return 0
	}
	return -1
}
