package delta

import (
	"encoding/json"
	"testing"
)

// TestGroupByPartitionFastPath checks that the allocation-free partition
// keys give the partition values coercion and serializePartitionValue give.
func TestGroupByPartitionFastPath(t *testing.T) {
	schema := &StructType{Fields: []*StructField{
		{Name: "y", Type: TypeInteger, Nullable: true},
		{Name: "s", Type: TypeString, Nullable: true},
		{Name: "b", Type: TypeByte, Nullable: true},
	}}
	parts := []string{"y", "s", "b"}
	var rows []map[string]any
	for _, y := range []any{2026, int64(-7), float64(2026), json.Number("12"), int32(0), uint8(3), nil} {
		for _, s := range []any{"a", "", "\x01", "ü/=", nil} {
			for _, b := range []any{int8(-128), 127, nil} {
				rows = append(rows, map[string]any{"y": y, "s": s, "b": b})
			}
		}
	}
	groups, err := groupByPartition(schema, parts, rows)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, g := range groups {
		for _, i := range g.rows {
			seen++
			for _, pc := range parts {
				c, err := coerceValue(schema.Field(pc).Type, rows[i][pc], pc)
				if err != nil {
					t.Fatal(err)
				}
				want, err := serializePartitionValue(schema.Field(pc).Type, c)
				if err != nil {
					t.Fatal(err)
				}
				if got := g.values[pc]; got != want {
					t.Fatalf("row %d %s: got %q, want %q", i, pc, got, want)
				}
			}
		}
	}
	// 2026 and float64(2026) are one value; null, "" and "\x01" are three.
	if want := 6 * 5 * 3; len(groups) != want {
		t.Fatalf("got %d groups, want %d", len(groups), want)
	}
	if seen != len(rows) {
		t.Fatalf("got %d rows in groups, want %d", seen, len(rows))
	}
	for _, bad := range []map[string]any{{"y": 1 << 40}, {"y": 1.5}, {"b": 128}, {"s": 3}} {
		if _, err := groupByPartition(schema, parts, []map[string]any{bad}); err == nil {
			t.Fatalf("%v: got no error", bad)
		}
	}
}
