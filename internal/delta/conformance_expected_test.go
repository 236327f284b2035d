package delta

import (
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// expectedContents checks tables against what their generator wrote, as
// GoldenTables.scala (delta-io/delta, connectors/golden-tables) defines
// them.
var expectedContents = map[string]func(t *testing.T, s *Snapshot, rows []map[string]any){
	// Ten rows i = 0..9 of every primitive type, plus a row of nulls.
	"delta-golden/data-reader-primitives": func(t *testing.T, s *Snapshot, rows []map[string]any) {
		var want []map[string]any
		for i := 0; i < 10; i++ {
			want = append(want, map[string]any{
				"as_int": int32(i), "as_long": int64(i), "as_byte": int8(i), "as_short": int16(i),
				"as_boolean": i%2 == 0, "as_float": float32(i), "as_double": float64(i),
				"as_string": strconv.Itoa(i), "as_binary": []byte{byte(i), byte(i)},
				"as_big_decimal": dec(int64(i), 0),
			})
		}
		nulls := map[string]any{}
		for k := range want[0] {
			nulls[k] = nil
		}
		want = append(want, nulls)
		assertRows(t, rows, want)
	},
	// a: struct<aa, ab: string, ac: struct<aca: int, acb: long>>, b: int.
	"delta-golden/data-reader-nested-struct": func(t *testing.T, s *Snapshot, rows []map[string]any) {
		var want []map[string]any
		for i := 0; i < 10; i++ {
			want = append(want, map[string]any{
				"a": map[string]any{"aa": strconv.Itoa(i), "ab": strconv.Itoa(i),
					"ac": map[string]any{"aca": int32(i), "acb": int64(i)}},
				"b": int32(i),
			})
		}
		assertRows(t, rows, want)
	},
	// One-element arrays of every primitive type.
	"delta-golden/data-reader-array-primitives": func(t *testing.T, s *Snapshot, rows []map[string]any) {
		var want []map[string]any
		for i := 0; i < 10; i++ {
			want = append(want, map[string]any{
				"as_array_int": []any{int32(i)}, "as_array_long": []any{int64(i)}, "as_array_byte": []any{int8(i)},
				"as_array_short": []any{int16(i)}, "as_array_boolean": []any{i%2 == 0}, "as_array_float": []any{float32(i)},
				"as_array_double": []any{float64(i)}, "as_array_string": []any{strconv.Itoa(i)},
				"as_array_binary": []any{[]byte{byte(i), byte(i)}}, "as_array_big_decimal": []any{dec(int64(i), 0)},
			})
		}
		assertRows(t, rows, want)
	},
	// Twelve partition columns of every type; rows i = 0, 1 and a row whose
	// partition values are all null.
	"delta-golden/data-reader-partition-values": func(t *testing.T, s *Snapshot, rows []map[string]any) {
		if got := len(s.Metadata().PartitionColumns); got != 12 {
			t.Fatalf("%d partition columns, want 12", got)
		}
		ts := time.Date(2021, 9, 8, 11, 11, 11, 0, time.UTC)
		day := time.Date(2021, 9, 8, 0, 0, 0, 0, time.UTC)
		var want []map[string]any
		for i := 0; i < 3; i++ {
			list := []any{}
			for range 3 {
				list = append(list, map[string]any{"val": int32(i)})
			}
			r := map[string]any{
				"as_list_of_records": list,
				"as_nested_struct": map[string]any{"aa": strconv.Itoa(i), "ab": strconv.Itoa(i),
					"ac": map[string]any{"aca": int32(i), "acb": int64(i)}},
				"value": strconv.Itoa(i),
			}
			if i < 2 {
				for k, v := range map[string]any{"as_int": int32(i), "as_long": int64(i), "as_byte": int8(i), "as_short": int16(i),
					"as_boolean": i%2 == 0, "as_float": float32(i), "as_double": float64(i), "as_string": strconv.Itoa(i),
					"as_string_lit_null": "null", "as_date": day, "as_timestamp": ts, "as_big_decimal": dec(int64(i), 0)} {
					r[k] = v
				}
			} else {
				for _, k := range s.Metadata().PartitionColumns {
					r[k] = nil
				}
			}
			want = append(want, r)
		}
		assertRows(t, rows, want)
	},
	"delta-golden/deltalog-getChanges": func(t *testing.T, s *Snapshot, rows []map[string]any) {
		if v, ok := s.TxnVersion("fakeAppId"); !ok || v != 3 {
			t.Fatalf("txn fakeAppId = %d, %v; want 3", v, ok)
		}
	},
	// range(1) then range(30) appended; version 1 has a 2-part checkpoint.
	"delta-golden/multi-part-checkpoint": func(t *testing.T, s *Snapshot, rows []map[string]any) {
		if s.checkpointVersion != 1 {
			t.Fatalf("replay started at checkpoint %d, want the multi-part checkpoint 1", s.checkpointVersion)
		}
		want := []map[string]any{{"id": int64(0)}}
		for i := 0; i < 30; i++ {
			want = append(want, map[string]any{"id": int64(i)})
		}
		assertRows(t, rows, want)
	},
}

func dec(unscaled int64, scale int) Decimal {
	return Decimal{Unscaled: big.NewInt(unscaled), Scale: scale}
}

func assertRows(t *testing.T, got, want []map[string]any) {
	t.Helper()
	got = append([]map[string]any(nil), got...)
	want = append([]map[string]any(nil), want...)
	sortRows(got)
	sortRows(want)
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("row %d:\n got %v\nwant %v", i, fmt.Sprint(got[i]), fmt.Sprint(want[i]))
		}
	}
}
