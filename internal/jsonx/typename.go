package jsonx

import (
	"fmt"
	"math"
)

// TypeName names the JSON type of a decoded value (as DecodeObject or
// encoding/json decode it) for messages that tell the string "40001" from
// the number 40001: string, integer (an integral number), number, boolean,
// object, array or null; other Go types by their Go name.
func TypeName(v any) string {
	switch x := v.(type) {
	case string:
		return "string"
	case int64, int:
		return "integer"
	case float64:
		if x == math.Trunc(x) && !math.IsInf(x, 0) {
			return "integer"
		}
		return "number"
	case bool:
		return "boolean"
	case map[string]any, *RawObject:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
