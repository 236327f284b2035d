package delta

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// InferType infers the Delta type of a column from a Go value as decoded
// from JSON (or built by a caller), with the number rule of inferColumn: a
// bare number is double, and the fields of an object follow the rule by
// their keys. Strings stay strings, int32 is integer, maps are structs with
// fields sorted by name, slices arrays. It returns false when nothing can be
// inferred: nil, an empty array, an empty object, or an unknown Go type.
func InferType(v any) (DataType, bool) { return inferColumn("", v) }

// inferColumn infers the type of a new column or struct field named key
// from its first value v.
//
// The number rule: a JSON number (float64, float32 or json.Number) infers
// double, whether or not it is integral, unless key is an identifier (it is
// "id" or ends in "_id", "Id" or "ID", as in assignment_id or projectId),
// which infers long so that ids stay exact (an identifier with a fractional
// value is double). The elements of an array follow the rule of the array's
// key. A field's type is fixed by its first value and Delta cannot widen
// long to double, so inferring long from an integral amount such as
// answers.linear_feet = 12 would make every later 12.5 a type conflict;
// double takes both (integral values are exact in a double up to 2^53).
// int, int64 and unsigned values (how decoders give integral JSON numbers)
// follow the same rule; int32, int16 and int8 are deliberate narrow types
// and infer integer, short and byte. Columns and fields that already exist
// keep their type whatever this rule says.
func inferColumn(key string, v any) (DataType, bool) { return infer(key, v, false) }

// valueType names the type of v itself: integral numbers are long, others
// double. Messages use it ("table has long, value is double"), and schema
// evolution uses it to check a value against an existing field.
func valueType(v any) (DataType, bool) { return infer("", v, true) }

// isIdentifier reports whether a field named key holds an identifier (see
// inferColumn).
func isIdentifier(key string) bool {
	return key == "id" || strings.HasSuffix(key, "_id") || strings.HasSuffix(key, "Id") || strings.HasSuffix(key, "ID")
}

// infer is inferColumn (exact false) or valueType (exact true).
func infer(key string, v any, exact bool) (DataType, bool) {
	switch x := decoded(v).(type) {
	case nil:
		return nil, false
	case string:
		return TypeString, true
	case bool:
		return TypeBoolean, true
	case float64:
		if (exact || isIdentifier(key)) && x == math.Trunc(x) && math.Abs(x) < 9.2e18 {
			return TypeLong, true
		}
		return TypeDouble, true
	case float32:
		return TypeDouble, true
	case json.Number:
		if exact || isIdentifier(key) {
			if _, err := x.Int64(); err == nil {
				return TypeLong, true
			}
		}
		return TypeDouble, true
	case int32:
		return TypeInteger, true
	case int16:
		return TypeShort, true
	case int8:
		return TypeByte, true
	case int, int64, uint, uint64, uint32, uint16, uint8:
		// Decoders give integral JSON numbers as int64: the same rule.
		if exact || isIdentifier(key) {
			return TypeLong, true
		}
		return TypeDouble, true
	case time.Time:
		return TypeTimestamp, true
	case []byte:
		return TypeBinary, true
	case Decimal:
		return &DecimalType{Precision: 38, Scale: x.Scale}, true
	case map[string]any:
		st := &StructType{}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if ft, ok := infer(k, x[k], exact); ok {
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
			t, ok := infer(key, e, exact)
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
			it, ok := inferColumn(k, v)
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
		mt, changed, err := mergeValue(f.Type, v, k)
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

// mergeValue merges the fields of value v into existing, the type of the
// column or field at path: a key the struct lacks becomes a new nullable
// field typed by inferColumn (new fields in key order); an existing field
// keeps its type, and v's value there must be compatible with it (judged by
// valueType, so an integral number still fits a long field). It returns
// existing itself when nothing changed; a misfit is a *SchemaError.
func mergeValue(existing DataType, v any, path string) (DataType, bool, error) {
	if v == nil {
		return existing, false, nil
	}
	v = decoded(v)
	switch e := existing.(type) {
	case *StructType:
		m, ok := v.(map[string]any)
		if !ok {
			break
		}
		out := e
		for _, k := range slices.Sorted(maps.Keys(m)) {
			x := m[k]
			if x == nil {
				continue
			}
			p := joinPath(path, k)
			i := out.FieldIndex(k)
			if i < 0 {
				ft, ok := inferColumn(k, x)
				if !ok {
					continue
				}
				for _, ef := range out.Fields {
					if strings.EqualFold(ef.Name, k) {
						return nil, false, &SchemaError{Row: -1, Path: p, Reason: "field name differs from existing field " + ef.Name + " only by case"}
					}
				}
				if out == e {
					out = shallowStruct(e)
				}
				out.Fields = append(out.Fields, &StructField{Name: k, Type: ft, Nullable: true})
				continue
			}
			mt, changed, err := mergeValue(out.Fields[i].Type, x, p)
			if err != nil {
				return nil, false, err
			}
			if changed {
				if out == e {
					out = shallowStruct(e)
				}
				nf := *out.Fields[i]
				nf.Type = mt
				out.Fields[i] = &nf
			}
		}
		return out, out != e, nil
	case *ArrayType:
		l, ok := toSlice(v)
		if !ok {
			break
		}
		et := e.ElementType
		for _, x := range l {
			mt, _, err := mergeValue(et, x, path+"[]")
			if err != nil {
				return nil, false, err
			}
			et = mt
		}
		if et == e.ElementType {
			return e, false, nil
		}
		return &ArrayType{ElementType: et, ContainsNull: e.ContainsNull}, true, nil
	case *MapType:
		m, ok := v.(map[string]any)
		if !ok {
			break
		}
		if len(m) > 0 && !compatible(e.KeyType, TypeString) {
			return nil, false, &SchemaError{Row: -1, Path: path + ".key", Existing: e.KeyType.String(), Incoming: TypeString.String()}
		}
		vt := e.ValueType
		for _, k := range slices.Sorted(maps.Keys(m)) {
			mt, _, err := mergeValue(vt, m[k], path+".value")
			if err != nil {
				return nil, false, err
			}
			vt = mt
		}
		if vt == e.ValueType {
			return e, false, nil
		}
		return &MapType{KeyType: e.KeyType, ValueType: vt, ValueContainsNull: e.ValueContainsNull}, true, nil
	default:
		it, ok := valueType(v)
		if !ok || compatible(existing, it) {
			return existing, false, nil
		}
		return nil, false, &SchemaError{Row: -1, Path: path, Existing: existing.String(), Incoming: it.String()}
	}
	it, ok := valueType(v)
	if !ok {
		return existing, false, nil
	}
	return nil, false, &SchemaError{Row: -1, Path: path, Existing: existing.String(), Incoming: it.String()}
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
	v = decoded(v)
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
