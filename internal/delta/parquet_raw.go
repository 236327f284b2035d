package delta

import (
	"errors"
	"sync/atomic"

	"kpipe/internal/jsonx"
)

// Shredding a *jsonx.RawObject (an object a decoder left undecoded) into a
// struct column, straight from its Reader: the members are walked once,
// each written to the field of its name, and the common leaves (a string
// into a string column, an integer into an integer column, a float into a
// double column, a boolean) without boxing. Everything else, and the
// members set over the object (RawObject.Set), is boxed as the decoder
// would have decoded it and goes through writeField, so values, coercions
// and stats are those of the object's Map.
//
// A key the struct lacks is skipped when its value carries no type (null,
// [] or {} of such values: untypeable), as writeStruct skips it. What this
// path does not know to write exactly as writeStruct would write the Map
// (a key the struct lacks with a typed value, which evolves the schema or
// is an error; a key given twice, of which a map keeps the last) fails it
// with errRawFallback, and the caller (fitRows) shreds the rows
// again with their RawObjects materialized. An error of this path is only
// ever a signal to do so: the error the caller reports comes from the maps.

// errRawFallback fails the shredding of a RawObject the fast path does not
// write; any error does the same, this one names the reason.
var errRawFallback = errors.New("delta: raw object needs the map path")

// rawFallbacks counts the Appends whose rows were shredded again with
// their RawObjects materialized (for tests: the fast path is taken).
var rawFallbacks atomic.Int64

// writeRaw shreds r into struct node n, as writeStruct would shred r.Map().
func (e *fileEncoder) writeRaw(n *wnode, r *jsonx.RawObject, rep int, inRep bool) error {
	rd := r.Reader()
	if err := e.readStruct(n, &rd, r.Set(), rep, inRep); err != nil {
		return err
	}
	return rd.Err()
}

// fieldIndex is the position of n's field named key, -1 if none; the field
// at cur (after the previous member's) is tried first, as members mostly
// come in schema order.
func (n *wnode) fieldIndex(key string, cur int) int {
	if cur < len(n.fields) && n.fields[cur].name == key {
		return cur
	}
	if i, ok := n.index[key]; ok {
		return i
	}
	return -1
}

// readStruct shreds the object rd is before into struct node n, with set
// (the RawObject's set members) over its members; fields neither has are
// null.
func (e *fileEncoder) readStruct(n *wnode, rd *jsonx.Reader, set []jsonx.Member, rep int, inRep bool) error {
	seen := e.seen[n.scr : n.scr+len(n.fields)]
	rd.Object()
	cur := 0
	for {
		key, ok := rd.Key()
		if !ok {
			break
		}
		if isSet(set, key) {
			rd.Skip() // replaced by the set member
			continue
		}
		i := n.fieldIndex(key, cur)
		if i < 0 {
			// A key the struct lacks is left out when its value carries
			// no type (writeStruct does the same); otherwise it is an
			// error, or evolves the schema.
			switch rd.Kind() {
			case jsonx.KindNull:
				rd.Null()
				continue
			case jsonx.KindArray, jsonx.KindObject:
				if untypeable(rd.Value()) {
					continue
				}
			}
			return errRawFallback
		}
		if seen[i] {
			return errRawFallback // a key given twice
		}
		seen[i], cur = true, i+1
		if err := e.readField(n.fields[i], rd, rep, n.def, inRep); err != nil {
			return err
		}
	}
	if err := rd.Err(); err != nil {
		return err
	}
	for _, m := range set {
		i := n.fieldIndex(m.Key, 0)
		if i < 0 && untypeable(m.Value) {
			continue
		}
		if i < 0 || seen[i] {
			return errRawFallback
		}
		seen[i] = true
		if err := e.writeField(n.fields[i], m.Value, rep, n.def, inRep); err != nil {
			return err
		}
	}
	for i, f := range n.fields {
		if seen[i] {
			seen[i] = false
			continue
		}
		if err := e.writeField(f, nil, rep, n.def, inRep); err != nil {
			return err
		}
	}
	return nil
}

func isSet(set []jsonx.Member, key string) bool {
	for i := range set {
		if set[i].Key == key {
			return true
		}
	}
	return false
}

// readField is writeField of the value rd is before, read from it.
func (e *fileEncoder) readField(n *wnode, rd *jsonx.Reader, rep, parentDef int, inRep bool) error {
	observe := !inRep && n.observe
	switch rd.Kind() {
	case jsonx.KindNull:
		rd.Null()
		return e.writeField(n, nil, rep, parentDef, inRep)
	case jsonx.KindString:
		if n.kind == kindLeaf && n.typ == TypeString {
			e.leafValidString(n, rd.String(), rep, observe)
			return nil
		}
	case jsonx.KindNumber:
		if n.kind != kindLeaf {
			break
		}
		x, f, isInt := rd.Number()
		if isInt {
			switch n.typ {
			case TypeLong, TypeInteger, TypeShort, TypeByte:
				if e.leafInt(n, x, rep, observe) {
					return nil
				}
			case TypeDouble:
				// As coercion converts it (toFloat64).
				e.leafDouble(n, float64(x), rep, observe)
				return nil
			}
			return e.writeField(n, x, rep, parentDef, inRep)
		}
		if n.typ == TypeDouble {
			e.leafDouble(n, f, rep, observe)
			return nil
		}
		return e.writeField(n, f, rep, parentDef, inRep)
	case jsonx.KindBool:
		if n.kind == kindLeaf && n.typ == TypeBoolean {
			e.leafBool(n, rd.Bool(), rep)
			return nil
		}
	case jsonx.KindObject:
		if n.kind == kindStruct {
			return e.readStruct(n, rd, nil, rep, inRep)
		}
	case jsonx.KindArray:
		if n.kind == kindList {
			return e.readList(n, rd, rep)
		}
	}
	// Any other value as the decoder gives it (a map for a map column, a
	// type conflict, a value to coerce).
	return e.writeField(n, rd.Value(), rep, parentDef, inRep)
}

// readList is writeField's list case for the array rd is before.
func (e *fileEncoder) readList(n *wnode, rd *jsonx.Reader, rep int) error {
	rd.Array()
	if !rd.Elem() {
		e.writeNulls(n, rep, n.def) // an empty list
		return rd.Err()
	}
	r := rep
	for {
		if err := e.readField(n.elem, rd, r, n.rdef, true); err != nil {
			return err
		}
		r = n.rrep
		if !rd.Elem() {
			return rd.Err()
		}
	}
}

// decoded is v, or its Map when v is a *jsonx.RawObject: for the code
// that needs an object as a map (coercion, schema evolution), which gives
// a RawObject the treatment of what it decodes to.
func decoded(v any) any {
	if r, ok := v.(*jsonx.RawObject); ok {
		return r.Map()
	}
	return v
}

// materializeRows returns rows with every *jsonx.RawObject in them decoded
// (jsonx.MaterializeMap), copying the slice and the rows that hold one; false
// when there is none.
func materializeRows(rows []map[string]any) ([]map[string]any, bool) {
	var out []map[string]any
	for i, r := range rows {
		m, changed := jsonx.MaterializeMap(r)
		if !changed {
			continue
		}
		if out == nil {
			out = append([]map[string]any(nil), rows...)
		}
		out[i] = m
	}
	return out, out != nil
}
