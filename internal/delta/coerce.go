package delta

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"time"

	"kpipe/internal/jsonx"
)

// CoerceRow checks a row against schema and returns a copy holding the
// canonical Go type of each column: string, int8/int16/int32/int64 for
// byte/short/integer/long, float32/float64, bool, []byte, time.Time (UTC;
// dates at midnight), Decimal, map[string]any for structs, []any for arrays,
// map[string]any (string keys) or map[any]any for maps, nil for null.
//
// Accepted inputs are the strict ones Cast documents (CastNone): any Go
// integer kind, integral float64 and json.Number for integer columns (with
// a range check); any number for floating and decimal columns; RFC 3339
// strings for timestamps and dates (see Cast); decimal strings; and
// never a number or boolean for a string column or a string for a number
// or boolean one (CoerceValue applies a Cast). Keys missing from the row
// are null; keys the schema does not have are an error. Errors are
// *SchemaError with Row -1.
func CoerceRow(schema *StructType, row map[string]any) (map[string]any, error) {
	out, err := coerceStruct(schema, row, "")
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ValidateRow reports whether row fits schema, as CoerceRow would.
func ValidateRow(schema *StructType, row map[string]any) error {
	_, err := CoerceRow(schema, row)
	return err
}

func schemaErr(path, format string, args ...any) *SchemaError {
	return &SchemaError{Row: -1, Path: path, Reason: fmt.Sprintf(format, args...)}
}

func coerceStruct(t *StructType, m map[string]any, path string) (map[string]any, error) {
	out := make(map[string]any, len(t.Fields))
	unknown, has := "", false // the first unknown key in key order
	for k, x := range m {
		if t.Field(k) == nil && !untypeable(x) && (!has || k < unknown) {
			unknown, has = k, true
		}
	}
	if has {
		return nil, &SchemaError{Row: -1, Path: joinPath(path, unknown), Reason: "column not in table schema", Err: errUnknownField}
	}
	for _, f := range t.Fields {
		p := joinPath(path, f.Name)
		v, err := coerceValue(f.Type, m[f.Name], p)
		if err != nil {
			return nil, err
		}
		if v == nil && !f.Nullable {
			return nil, schemaErr(p, "null in NOT NULL column")
		}
		out[f.Name] = v
	}
	return out, nil
}

// untypeable reports whether x carries no type information: null, or an
// array or object holding nothing but such values (e.g. "media": []). A key
// the schema lacks with such a value is stored as null instead of refusing
// the row: nothing can be inferred from it, and the field joins the schema
// when a value with a type arrives. A *jsonx.RawObject is judged by its
// Map.
func untypeable(x any) bool {
	switch v := decoded(x).(type) {
	case nil:
		return true
	case []any:
		for _, e := range v {
			if !untypeable(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range v {
			if !untypeable(e) {
				return false
			}
		}
		return true
	}
	return false
}

// errUnknownField marks a SchemaError about a key the schema lacks, which
// schema evolution can fix.
var errUnknownField = fmt.Errorf("unknown field")

func conflict(t DataType, v any, path, reason string) *SchemaError {
	return &SchemaError{Row: -1, Path: path, Existing: t.String(), Incoming: goTypeName(v), Reason: reason}
}

// goTypeName names a Go value's type in Delta terms for messages.
func goTypeName(v any) string {
	if it, ok := valueType(v); ok {
		return it.String()
	}
	switch v.(type) {
	case map[string]any, *jsonx.RawObject:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

func coerceValue(t DataType, v any, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	v = decoded(v)
	switch t := t.(type) {
	case PrimitiveType:
		return coercePrimitive(t, v, path)
	case *DecimalType:
		d, err := toDecimal(v, t)
		if err != nil {
			return nil, conflict(t, v, path, err.Error())
		}
		return d, nil
	case *StructType:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, conflict(t, v, path, "")
		}
		return coerceStruct(t, m, path)
	case *ArrayType:
		l, ok := toSlice(v)
		if !ok {
			return nil, conflict(t, v, path, "")
		}
		out := make([]any, len(l))
		for i, e := range l {
			ev, err := coerceValue(t.ElementType, e, path+"[]")
			if err != nil {
				return nil, err
			}
			if ev == nil && !t.ContainsNull {
				return nil, schemaErr(path, "null element in array without nulls")
			}
			out[i] = ev
		}
		return out, nil
	case *MapType:
		entries, ok := toEntries(v)
		if !ok {
			return nil, conflict(t, v, path, "")
		}
		strKeys := t.KeyType == TypeString
		ms := map[string]any{}
		ma := map[any]any{}
		for _, e := range entries {
			k, err := coerceValue(t.KeyType, e[0], path+".key")
			if err != nil {
				return nil, err
			}
			if k == nil {
				return nil, schemaErr(path, "null map key")
			}
			val, err := coerceValue(t.ValueType, e[1], path+".value")
			if err != nil {
				return nil, err
			}
			if val == nil && !t.ValueContainsNull {
				return nil, schemaErr(path, "null map value in map without null values")
			}
			if strKeys {
				ms[k.(string)] = val
			} else {
				ma[k] = val
			}
		}
		if strKeys {
			return ms, nil
		}
		return ma, nil
	}
	return nil, schemaErr(path, "unsupported column type %s", t)
}

func toSlice(v any) ([]any, bool) {
	switch l := v.(type) {
	case []any:
		return l, true
	case []string:
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out, true
	case []map[string]any:
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

func toEntries(v any) ([][2]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		out := make([][2]any, 0, len(m))
		for k, x := range m {
			out = append(out, [2]any{k, x})
		}
		return out, true
	case map[string]string:
		out := make([][2]any, 0, len(m))
		for k, x := range m {
			out = append(out, [2]any{k, x})
		}
		return out, true
	case map[any]any:
		out := make([][2]any, 0, len(m))
		for k, x := range m {
			out = append(out, [2]any{k, x})
		}
		return out, true
	case [][2]any: // keys that cannot key a Go map (see readValue)
		return m, true
	}
	return nil, false
}

// toInt64 converts any integer-like value, reporting ok=false for other
// types and an error for non-integral or out-of-range values.
func toInt64(v any) (int64, bool, error) {
	switch x := v.(type) {
	case int:
		return int64(x), true, nil
	case int64:
		return x, true, nil
	case int32:
		return int64(x), true, nil
	case int16:
		return int64(x), true, nil
	case int8:
		return int64(x), true, nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, true, fmt.Errorf("%d out of range", x)
		}
		return int64(x), true, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, true, fmt.Errorf("%d out of range", x)
		}
		return int64(x), true, nil
	case uint32:
		return int64(x), true, nil
	case uint16:
		return int64(x), true, nil
	case uint8:
		return int64(x), true, nil
	case float64:
		if x != math.Trunc(x) || math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, false, nil
		}
		if x < -9.223372036854775808e18 || x >= 9.223372036854775808e18 {
			return 0, true, fmt.Errorf("%g out of range", x)
		}
		return int64(x), true, nil
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			if f, ferr := x.Float64(); ferr == nil && f == math.Trunc(f) && math.Abs(f) < 9.2e18 {
				return int64(f), true, nil
			}
			return 0, false, nil
		}
		return n, true, nil
	}
	return 0, false, nil
}

func toFloat64(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	if n, ok, err := toInt64(v); ok && err == nil {
		return float64(n), true
	}
	return 0, false
}

func intRange(t PrimitiveType) (int64, int64) {
	switch t {
	case TypeByte:
		return math.MinInt8, math.MaxInt8
	case TypeShort:
		return math.MinInt16, math.MaxInt16
	case TypeInteger:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

func coercePrimitive(t PrimitiveType, v any, path string) (any, error) {
	switch t {
	case TypeString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case TypeBinary:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case TypeByte, TypeShort, TypeInteger, TypeLong:
		n, ok, err := toInt64(v)
		if !ok {
			break
		}
		lo, hi := intRange(t)
		if err != nil || n < lo || n > hi {
			return nil, conflict(t, v, path, fmt.Sprintf("value %v out of range", v))
		}
		switch t {
		case TypeByte:
			return int8(n), nil
		case TypeShort:
			return int16(n), nil
		case TypeInteger:
			return int32(n), nil
		}
		return n, nil
	case TypeFloat:
		if f, ok := toFloat64(v); ok {
			return float32(f), nil
		}
	case TypeDouble:
		if f, ok := toFloat64(v); ok {
			return f, nil
		}
	case TypeDate:
		switch x := v.(type) {
		case time.Time:
			y, m, d := x.Date()
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
		case string:
			ts, err := parseTime(x)
			if err != nil {
				return nil, conflict(t, v, path, err.Error())
			}
			y, m, d := ts.Date()
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
		}
	case TypeTimestamp, TypeTimestampNTZ:
		switch x := v.(type) {
		case time.Time:
			return x.UTC().Truncate(time.Microsecond), nil
		case string:
			ts, err := parseTime(x)
			if err != nil {
				return nil, conflict(t, v, path, err.Error())
			}
			return ts.Truncate(time.Microsecond), nil
		}
	}
	return nil, conflict(t, v, path, "")
}

// parseTime parses a timestamp or date string as UTC: RFC 3339
// (fractional seconds optional), the same without a zone (read as UTC), or
// a date alone (its midnight), as ClaimX writes them in places.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp or a date", s)
}

func toDecimal(v any, t *DecimalType) (Decimal, error) {
	switch x := v.(type) {
	case Decimal:
		return decimalFromRat(new(big.Rat).SetFrac(x.Unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(x.Scale)), nil)), t.Precision, t.Scale)
	case string:
		return ParseDecimal(x, t.Precision, t.Scale)
	case json.Number:
		return ParseDecimal(x.String(), t.Precision, t.Scale)
	case float64:
		return ParseDecimal(strconv.FormatFloat(x, 'f', -1, 64), t.Precision, t.Scale)
	case float32:
		return ParseDecimal(strconv.FormatFloat(float64(x), 'f', -1, 32), t.Precision, t.Scale)
	}
	if n, ok, err := toInt64(v); ok && err == nil {
		return decimalFromRat(new(big.Rat).SetInt64(n), t.Precision, t.Scale)
	}
	return Decimal{}, fmt.Errorf("not a decimal")
}
