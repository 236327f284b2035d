package jsonx

import (
	"math"
	"testing"
)

func TestTypeName(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{"40001", "string"}, {int64(40001), "integer"}, {40001.0, "integer"}, {12.5, "number"},
		{math.Inf(1), "number"}, {true, "boolean"}, {map[string]any{}, "object"}, {[]any{}, "array"},
		{nil, "null"}, {int32(1), "int32"},
	} {
		if got := TypeName(tt.v); got != tt.want {
			t.Errorf("TypeName(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
