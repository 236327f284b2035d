package delta

import (
	"encoding/json"
	"fmt"
	"kpipe/internal/jsonx"
	"math"
	"strconv"
	"strings"
)

// Cast is a conversion between JSON types that a caller allows for one
// column (AppendOptions.Casts, CoerceValue). Values are strict without
// one: a value is stored only when it has the column's own JSON type, or,
// for a type JSON has none for, the text form of it. Precisely, CastNone
// accepts
//
//   - string columns: strings;
//   - boolean columns: booleans;
//   - byte, short, integer and long columns: integral numbers in range
//     (int64, or a float64 or json.Number without a fraction);
//   - float and double columns: numbers;
//   - decimal columns: numbers, and decimal strings ("12.50"), exact;
//   - timestamp and date columns: time.Time, and strings in RFC 3339
//     (fractional seconds optional), the same without a zone (read as
//     UTC) or a date alone ("2006-01-02", its midnight UTC); a date column
//     keeps the UTC date of a timestamp;
//   - binary columns: []byte and strings;
//
// and anything else (a number or boolean for a string column, a string for
// a number or boolean column) is a *SchemaError type conflict. Go integer
// and float kinds count as numbers.
type Cast uint8

const (
	// CastNone is the strict default: no conversion between JSON types.
	CastNone Cast = iota
	// CastToString stores a number or boolean given to a string column as
	// its JSON text: 40001 → "40001", 12.5 → "12.5", 1e21 → "1e+21",
	// true → "true".
	CastToString
	// CastFromString parses a string given to a number or boolean column:
	// "40001" → 40001 for byte, short, integer and long columns (decimal
	// digits, range checked), "12.5" → 12.5 for float and double columns
	// (finite numbers only), "true" and "false" for boolean columns. A
	// string that does not parse is a type conflict.
	CastFromString
)

// String returns the cast's name as ParseCast accepts it.
func (c Cast) String() string {
	switch c {
	case CastNone:
		return "none"
	case CastToString:
		return "to_string"
	case CastFromString:
		return "from_string"
	}
	return fmt.Sprintf("Cast(%d)", uint8(c))
}

// ParseCast returns the Cast named s: "none" (or ""), "to_string" or
// "from_string".
func ParseCast(s string) (Cast, error) {
	switch s {
	case "", "none":
		return CastNone, nil
	case "to_string":
		return CastToString, nil
	case "from_string":
		return CastFromString, nil
	}
	return CastNone, fmt.Errorf("delta: unknown cast %q (want none, to_string or from_string)", s)
}

// appliesTo reports whether c can convert anything into a column of type t.
func (c Cast) appliesTo(t DataType) bool {
	switch c {
	case CastNone:
		return true
	case CastToString:
		return t == TypeString
	case CastFromString:
		switch t {
		case TypeByte, TypeShort, TypeInteger, TypeLong, TypeFloat, TypeDouble, TypeBoolean:
			return true
		}
	}
	return false
}

// CoerceValue converts v for a column of type t as Append stores it, with
// the conversion cast allows (CastNone: strict, see Cast), and returns the
// canonical Go value CoerceRow documents. path names the column in errors;
// a value that does not fit is a *SchemaError with Row -1.
func CoerceValue(t DataType, v any, path string, cast Cast) (any, error) {
	return castValue(t, v, path, cast)
}

// CoerceColumn is CoerceValue for the value of a top-level column that
// Append will store, before Append evolves the schema: a primitive value is
// converted as CoerceValue does (with cast), while a struct, array or map
// value is only checked for its kind (an object, an array, a map) and
// returned as it is, because Append coerces its contents after schema
// evolution may have added fields to the column's type. It is what a
// caller that checks values as they arrive (the pipeline's delta_writer)
// uses, so that it and Append apply the same rules. A *jsonx.RawObject is
// an object (returned as it is, like a map); CoerceColumn, CoerceValue and
// CoerceRow treat one, at any depth, exactly as its jsonx.Materialize.
func CoerceColumn(t DataType, v any, path string, cast Cast) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t.(type) {
	case *StructType:
		switch v.(type) {
		case map[string]any, *jsonx.RawObject:
		default:
			return nil, kindConflict(v, path, "an object")
		}
		return v, nil
	case *ArrayType:
		if _, ok := v.([]any); !ok {
			return nil, kindConflict(v, path, "an array")
		}
		return v, nil
	case *MapType:
		return v, nil
	}
	return castValue(t, v, path, cast)
}

// kindConflict is the type conflict of a value of the wrong kind for a
// struct or array column, named in JSON terms ("string value is not an
// object"): the column's whole type can be long.
func kindConflict(v any, path, want string) *SchemaError {
	return &SchemaError{Row: -1, Path: path, Reason: jsonx.TypeName(v) + " value is not " + want}
}

// castValue is coerceValue with cast applied to a primitive value of
// another JSON type than t's.
func castValue(t DataType, v any, path string, cast Cast) (any, error) {
	if cast != CastNone && v != nil {
		if pt, ok := t.(PrimitiveType); ok {
			if c, ok, err := applyCast(pt, v, path, cast); ok {
				return c, err
			}
		}
	}
	return coerceValue(t, v, path)
}

// applyCast converts v with cast when it applies to t and v; ok is false
// when it does not, leaving v to the strict rules.
func applyCast(t PrimitiveType, v any, path string, cast Cast) (any, bool, error) {
	switch cast {
	case CastToString:
		if t != TypeString {
			return nil, false, nil
		}
		switch x := v.(type) {
		case bool:
			return strconv.FormatBool(x), true, nil
		case json.Number:
			return x.String(), true, nil
		case float64:
			return jsonFloat(x, 64), true, nil
		case float32:
			return jsonFloat(float64(x), 32), true, nil
		}
		if n, ok, err := toInt64(v); ok && err == nil {
			return strconv.FormatInt(n, 10), true, nil
		}
		if x, ok := v.(uint64); ok {
			return strconv.FormatUint(x, 10), true, nil
		}
	case CastFromString:
		s, ok := v.(string)
		if !ok {
			return nil, false, nil
		}
		switch t {
		case TypeByte, TypeShort, TypeInteger, TypeLong:
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, true, conflict(t, v, path, fmt.Sprintf("%q is not an integer", s))
			}
			c, err := coercePrimitive(t, n, path)
			return c, true, err
		case TypeFloat, TypeDouble:
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, true, conflict(t, v, path, fmt.Sprintf("%q is not a finite number", s))
			}
			c, err := coercePrimitive(t, f, path)
			return c, true, err
		case TypeBoolean:
			switch s {
			case "true":
				return true, true, nil
			case "false":
				return false, true, nil
			}
			return nil, true, conflict(t, v, path, fmt.Sprintf("%q is not true or false", s))
		}
	}
	return nil, false, nil
}

// jsonFloat formats f as encoding/json does: the shortest form that reads
// back the same, with an exponent outside [1e-6, 1e21).
func jsonFloat(f float64, bits int) string {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b := strconv.AppendFloat(nil, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return string(b)
}

// columnType resolves a column path as SchemaError.Path spells it
// ("a.b", "a[]", "m.key", "m.value") in s.
func columnType(s *StructType, path string) (DataType, bool) {
	var t DataType = s
	for _, seg := range strings.Split(path, ".") {
		arrays := 0
		for strings.HasSuffix(seg, "[]") {
			seg = strings.TrimSuffix(seg, "[]")
			arrays++
		}
		switch x := t.(type) {
		case *StructType:
			f := x.Field(seg)
			if f == nil {
				return nil, false
			}
			t = f.Type
		case *MapType:
			switch seg {
			case "key":
				t = x.KeyType
			case "value":
				t = x.ValueType
			default:
				return nil, false
			}
		default:
			return nil, false
		}
		for range arrays {
			a, ok := t.(*ArrayType)
			if !ok {
				return nil, false
			}
			t = a.ElementType
		}
	}
	return t, true
}

// checkCasts refuses a cast for a column of a type it cannot convert
// into; a path the schema lacks (yet) is left alone.
func checkCasts(s *StructType, casts map[string]Cast) error {
	for path, c := range casts {
		t, ok := columnType(s, path)
		if !ok {
			continue
		}
		if !c.appliesTo(t) {
			return fmt.Errorf("delta: cast %s does not apply to column %q of type %s", c, path, t)
		}
	}
	return nil
}
