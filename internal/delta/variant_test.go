package delta

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The golden variant table (delta-spark 4.0, GoldenTables' info.txt): ids
// 0..99 then 0 and 1 again; v is parse_json('{"key": id}'), nested in
// arrays, structs and maps too. Variants read as JSON text; appends are
// refused naming the feature.
func TestVariantReferenceTable(t *testing.T) {
	store := copyRefTable(t, "delta-golden", "spark-variant-checkpoint")
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, r := range rows {
		id := r["id"].(int64)
		ids = append(ids, id)
		want := fmt.Sprintf(`{"key":%d}`, id)
		if r["v"] != want {
			t.Fatalf("id %d: v = %#v, want %s", id, r["v"], want)
		}
		if a := r["array_of_variants"].([]any); len(a) != 5 || a[0] != want || a[1] != nil {
			t.Fatalf("id %d: array_of_variants = %#v", id, a)
		}
		if s := r["struct_of_variants"].(map[string]any); s["v"] != want {
			t.Fatalf("id %d: struct_of_variants = %#v", id, s)
		}
	}
	slices.Sort(ids)
	want := append([]int64{0, 1}, idsExcept(100)...)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %v", ids)
	}
	_, err = tb.Append(t.Context(), []map[string]any{{"id": int64(5)}}, AppendOptions{})
	if !errors.Is(err, ErrUnsupportedFeature) || !strings.Contains(err.Error(), "variantType-preview") {
		t.Fatalf("append: %v, want a refusal naming variantType-preview", err)
	}
}

// Every primitive of the Parquet Variant encoding renders as JSON.
func TestVariantJSONPrimitives(t *testing.T) {
	meta := []byte{0x01, 0x02, 0x00, 0x01, 0x02, 'a', 'b'} // dictionary ["a", "b"]
	prim := func(id byte, b ...byte) []byte { return append([]byte{id << 2}, b...) }
	for _, c := range []struct {
		v    []byte
		want string
	}{
		{prim(0), "null"}, {prim(1), "true"}, {prim(2), "false"},
		{prim(3, 0xFF), "-1"}, {prim(4, 0x00, 0x80), "-32768"}, {prim(5, 1, 0, 0, 0), "1"},
		{prim(6, 2, 0, 0, 0, 0, 0, 0, 0), "2"},
		{prim(7, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F), "1.5"},
		{prim(8, 2, 0x39, 0x30, 0, 0), "123.45"},
		{prim(11, 1, 0, 0, 0), `"1970-01-02"`},
		{prim(16, 2, 0, 0, 0, 'h', 'i'), `"hi"`},
		{[]byte{3<<2 | 1, 'x', 'y', 'z'}, `"xyz"`}, // short string
		{[]byte{0x02, 2, 1, 0, 0, 1, 2, 0x04, 0x08}, `{"b":true,"a":false}`},
		{[]byte{0x03, 2, 0, 1, 2, 0x04, 0x00}, `[true,null]`},
	} {
		got, err := VariantJSON(c.v, meta)
		if err != nil || got != c.want {
			t.Errorf("%x: %q, %v; want %s", c.v, got, err, c.want)
		}
	}
	if _, err := VariantJSON([]byte{0x02, 5}, meta); err == nil {
		t.Error("truncated object read without error")
	}
}
