package delta

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// InferType infers a Delta type from a Go value as decoded from JSON (or
// built by a caller): strings stay strings, integral float64 and integer
// kinds are long (int32 is integer), other numbers double, maps structs with
// fields sorted by name, slices arrays. It returns false when nothing can be
// inferred: nil, an empty array, an empty object, or an unknown Go type.
func InferType(v any) (DataType, bool) { return inferType(v) }

func inferType(v any) (DataType, bool) {
	switch x := v.(type) {
	case nil:
		return nil, false
	case string:
		return TypeString, true
	case bool:
		return TypeBoolean, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 9.2e18 {
			return TypeLong, true
		}
		return TypeDouble, true
	case float32:
		return TypeDouble, true
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return TypeLong, true
		}
		return TypeDouble, true
	case int32:
		return TypeInteger, true
	case int16:
		return TypeShort, true
	case int8:
		return TypeByte, true
	case int, int64, uint, uint64, uint32, uint16, uint8:
		return TypeLong, true
	case time.Time:
		return TypeTimestamp, true
	case []byte:
		return TypeBinary, true
	case Decimal:
		return &DecimalType{Precision: 38, Scale: x.Scale}, true
	case map[string]any:
		st := &StructType{}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if ft, ok := inferType(x[k]); ok {
				st.Fields = append(st.Fields, &StructField{Name: k, Type: ft, Nullable: true})
			}
		}
		if len(st.Fields) == 0 {
			return nil, false
		}
		return st, true
	}
	if l, ok := toSlice(v); ok {
		var et DataType
		for _, e := range l {
			t, ok := inferType(e)
			if !ok {
				continue
			}
			if et == nil {
				et = t
				continue
			}
			m, _, err := mergeType(et, t, "")
			if err != nil {
				// Mixed element types: widen numbers, otherwise give up.
				if isNumeric(et) && isNumeric(t) {
					et = TypeDouble
					continue
				}
				return nil, false
			}
			et = m
		}
		if et == nil {
			return nil, false
		}
		return &ArrayType{ElementType: et, ContainsNull: true}, true
	}
	return nil, false
}

func isNumeric(t DataType) bool {
	switch t {
	case TypeByte, TypeShort, TypeInteger, TypeLong, TypeFloat, TypeDouble:
		return true
	}
	_, ok := t.(*DecimalType)
	return ok
}

// compatible reports whether values inferred as incoming can be written to
// a column of type existing (CoerceRow converts them, checking ranges).
func compatible(existing, incoming DataType) bool {
	if TypesEqual(existing, incoming) {
		return true
	}
	switch existing {
	case TypeByte, TypeShort, TypeInteger, TypeLong:
		switch incoming {
		case TypeByte, TypeShort, TypeInteger, TypeLong:
			return true
		}
	case TypeFloat, TypeDouble:
		return isNumeric(incoming)
	case TypeTimestamp, TypeTimestampNTZ, TypeDate, TypeBinary:
		return incoming == TypeString
	}
	if _, ok := existing.(*DecimalType); ok {
		return isNumeric(incoming) || incoming == TypeString
	}
	return false
}

// MergeSchema merges incoming into existing additively: fields new to a
// struct are appended (nullable), nested structs merge recursively, arrays
// and maps merge their element types. It returns the merged schema (a new
// value when changed) and whether anything changed. A type conflict is a
// *SchemaError naming the field path and both types.
func MergeSchema(existing, incoming *StructType) (*StructType, bool, error) {
	t, changed, err := mergeType(existing, incoming, "")
	if err != nil {
		return nil, false, err
	}
	return t.(*StructType), changed, nil
}

func mergeType(existing, incoming DataType, path string) (DataType, bool, error) {
	switch e := existing.(type) {
	case *StructType:
		in, ok := incoming.(*StructType)
		if !ok {
			break
		}
		var out *StructType
		for _, f := range in.Fields {
			p := joinPath(path, f.Name)
			i := e.FieldIndex(f.Name)
			if i < 0 {
				for _, ef := range e.Fields {
					if strings.EqualFold(ef.Name, f.Name) {
						return nil, false, &SchemaError{Row: -1, Path: p, Reason: "field name differs from existing field " + ef.Name + " only by case"}
					}
				}
				if out == nil {
					out = shallowStruct(e)
				}
				nf := *f
				nf.Nullable = true
				out.Fields = append(out.Fields, &nf)
				continue
			}
			base := e
			if out != nil {
				base = out
			}
			mt, changed, err := mergeType(base.Fields[i].Type, f.Type, p)
			if err != nil {
				return nil, false, err
			}
			if changed {
				if out == nil {
					out = shallowStruct(e)
				}
				nf := *out.Fields[i]
				nf.Type = mt
				out.Fields[i] = &nf
			}
		}
		if out == nil {
			return e, false, nil
		}
		return out, true, nil
	case *ArrayType:
		in, ok := incoming.(*ArrayType)
		if !ok {
			break
		}
		mt, changed, err := mergeType(e.ElementType, in.ElementType, path+"[]")
		if err != nil || !changed {
			return e, false, err
		}
		return &ArrayType{ElementType: mt, ContainsNull: e.ContainsNull}, true, nil
	case *MapType:
		in, ok := incoming.(*MapType)
		if !ok {
			break
		}
		if !compatible(e.KeyType, in.KeyType) {
			return nil, false, &SchemaError{Row: -1, Path: path + ".key", Existing: e.KeyType.String(), Incoming: in.KeyType.String()}
		}
		mt, changed, err := mergeType(e.ValueType, in.ValueType, path+".value")
		if err != nil || !changed {
			return e, false, err
		}
		return &MapType{KeyType: e.KeyType, ValueType: mt, ValueContainsNull: e.ValueContainsNull}, true, nil
	default:
		if compatible(existing, incoming) {
			return existing, false, nil
		}
	}
	return nil, false, &SchemaError{Row: -1, Path: path, Existing: existing.String(), Incoming: incoming.String()}
}

func shallowStruct(s *StructType) *StructType {
	return &StructType{Fields: slices.Clone(s.Fields)}
}

// evolveRow merges the types inferred from row into schema. order lists the
// declared top-level column order: a new top-level column is inserted after
// the nearest declared column before it that is already in the schema (at
// the end when it is not declared). It returns schema itself when nothing
// changed.
func evolveRow(schema *StructType, row map[string]any, order []string) (*StructType, error) {
	// Fast path, without allocating: does every key fit already?
	fits := true
	for k, v := range row {
		if v == nil {
			continue
		}
		f := schema.Field(k)
		if f == nil || (hasStruct(f.Type) && !fitsType(f.Type, v)) {
			fits = false
			break
		}
	}
	if fits {
		return schema, nil
	}
	out := schema
	for _, k := range slices.Sorted(maps.Keys(row)) {
		v := row[k]
		if v == nil {
			continue
		}
		i := out.FieldIndex(k)
		if i < 0 {
			it, ok := inferType(v)
			if !ok {
				continue
			}
			for _, ef := range out.Fields {
				if strings.EqualFold(ef.Name, k) {
					return nil, &SchemaError{Row: -1, Path: k, Reason: "column name differs from existing column " + ef.Name + " only by case"}
				}
			}
			if out == schema {
				out = shallowStruct(schema)
			}
			insertColumn(out, &StructField{Name: k, Type: it, Nullable: true}, order)
			continue
		}
		f := out.Fields[i]
		if !hasStruct(f.Type) || fitsType(f.Type, v) {
			continue
		}
		it, ok := inferType(v)
		if !ok {
			continue
		}
		mt, changed, err := mergeType(f.Type, it, k)
		if err != nil {
			return nil, err
		}
		if changed {
			if out == schema {
				out = shallowStruct(schema)
			}
			nf := *f
			nf.Type = mt
			out.Fields[i] = &nf
		}
	}
	return out, nil
}

func insertColumn(s *StructType, f *StructField, order []string) {
	pos := slices.Index(order, f.Name)
	if pos < 0 {
		s.Fields = append(s.Fields, f)
		return
	}
	at := 0
	for _, prev := range order[:pos] {
		if i := s.FieldIndex(prev); i >= 0 {
			at = i + 1
		}
	}
	s.Fields = slices.Insert(s.Fields, at, f)
}

func hasStruct(t DataType) bool {
	switch t := t.(type) {
	case *StructType:
		return true
	case *ArrayType:
		return hasStruct(t.ElementType)
	case *MapType:
		return hasStruct(t.ValueType)
	}
	return false
}

// fitsType reports, without allocating, whether every object key in v names
// a field of the corresponding struct type (so evolution has nothing to add).
func fitsType(t DataType, v any) bool {
	switch t := t.(type) {
	case *StructType:
		m, ok := v.(map[string]any)
		if !ok {
			return true // a type error, reported by coercion
		}
		for k, x := range m {
			f := t.Field(k)
			if f == nil {
				if x == nil {
					continue
				}
				return false
			}
			if x != nil && hasStruct(f.Type) && !fitsType(f.Type, x) {
				return false
			}
		}
		return true
	case *ArrayType:
		l, ok := v.([]any)
		if !ok {
			return true
		}
		for _, e := range l {
			if e != nil && !fitsType(t.ElementType, e) {
				return false
			}
		}
		return true
	case *MapType:
		m, ok := v.(map[string]any)
		if !ok {
			return true
		}
		for _, e := range m {
			if e != nil && !fitsType(t.ValueType, e) {
				return false
			}
		}
		return true
	}
	return true
}
