package delta

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

func TestInferNumberByKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		v    any
		want DataType
	}{
		{"integral amount", "linear_feet", float64(12), TypeDouble},
		{"decimal amount", "linear_feet", 12.5, TypeDouble},
		{"json number", "linear_feet", json.Number("12"), TypeDouble},
		{"id", "id", float64(7), TypeLong},
		{"snake id", "assignment_id", float64(1001), TypeLong},
		{"snake user id", "assigned_to_user_id", float64(1044), TypeLong},
		{"camel id", "projectId", float64(12345), TypeLong},
		{"upper id", "userID", json.Number("99"), TypeLong},
		{"fractional id", "assignment_id", 1.5, TypeDouble},
		{"not an id: paid", "paid", float64(3), TypeDouble},
		{"not an id: ids", "task_ids", float64(3), TypeDouble},
		{"no key", "", float64(3), TypeDouble},
		{"decoded integer", "count", int64(3), TypeDouble},
		{"decoded integer id", "task_id", int64(3), TypeLong},
		{"int32 kept", "count", int32(3), TypeInteger},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := inferColumn(tc.key, tc.v)
			if !ok || !TypesEqual(got, tc.want) {
				t.Fatalf("inferColumn(%q, %v) = %v, %v; want %v", tc.key, tc.v, got, ok, tc.want)
			}
		})
	}
	st, _ := InferType(map[string]any{"user_id": float64(5), "qty": float64(5), "ids_id": []any{float64(1), float64(2)}, "n": []any{float64(1), 2.5}})
	if got, want := st.String(), "struct<ids_id:array<long>,n:array<double>,qty:double,user_id:long>"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func answersRow(i int, ts time.Time, feet any) map[string]any {
	row := specRow(1, i, ts)
	row["original_event"] = map[string]any{
		"event_id":      fmt.Sprintf("evt-%d", i),
		"assignment_id": float64(1000 + i),
		"form_response": map[string]any{"answers": map[string]any{"linear_feet": feet}},
	}
	return row
}

func TestInferredNumberTakesIntegralThenDecimal(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for i, feet := range []any{float64(12), 12.5} {
		if _, err := tb.Append(t.Context(), []map[string]any{answersRow(i, ts, feet)}, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatalf("row %d (linear_feet %v): %v", i, feet, err)
		}
	}
	// A later row that adds a field keeps the existing long id field and
	// its integral value fits it.
	row := answersRow(2, ts, int64(13))
	row["original_event"].(map[string]any)["new_field"] = "x"
	if _, err := tb.Append(t.Context(), []map[string]any{row}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	oe := snap.Schema().Field("original_event").Type.(*StructType)
	if got := oe.Field("assignment_id").Type; got != TypeLong {
		t.Fatalf("original_event.assignment_id is %s, want long", got)
	}
	answers := oe.Field("form_response").Type.(*StructType).Field("answers").Type.(*StructType)
	if got := answers.Field("linear_feet").Type; got != TypeDouble {
		t.Fatalf("linear_feet is %s, want double", got)
	}
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	got := map[any]bool{}
	for _, r := range rows {
		a := r["original_event"].(map[string]any)["form_response"].(map[string]any)["answers"].(map[string]any)
		got[a["linear_feet"]] = true
	}
	for _, want := range []float64{12, 12.5, 13} {
		if !got[want] {
			t.Fatalf("linear_feet values %v, want 12.0, 12.5 and 13.0 as float64", got)
		}
	}
}

// rejectBatch is n rows of which every fifth does not fit: a string where
// linear_feet (double) or assignment_id (integer) is.
func rejectBatch(n int, ts time.Time) (rows []map[string]any, bad map[int]bool) {
	bad = map[int]bool{}
	for i := range n {
		r := answersRow(i, ts.Add(time.Duration(i)*time.Second), float64(i)+0.5)
		switch {
		case i == 0:
			// Nothing can be inferred from [] until row 1 adds the field.
			r["original_event"].(map[string]any)["later"] = []any{}
		case i == 1:
			r["original_event"].(map[string]any)["later"] = []any{"x"}
		case i%10 == 4:
			r["original_event"].(map[string]any)["form_response"].(map[string]any)["answers"].(map[string]any)["linear_feet"] = "twelve"
			bad[i] = true
		case i%10 == 9:
			r["assignment_id"] = "not a number"
			bad[i] = true
		}
		rows = append(rows, r)
	}
	return rows, bad
}

func TestAppendRejectBadRows(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	rows, bad := rejectBatch(10000, ts)
	res, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true, RejectBadRows: true, Txns: []Txn{{AppID: "p", Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 8000 || len(res.Rejected) != 2000 || res.Version != 1 {
		t.Fatalf("rows %d, rejected %d, version %d; want 8000, 2000, 1", res.Rows, len(res.Rejected), res.Version)
	}
	for k, se := range res.Rejected {
		if !bad[se.Row] || (k > 0 && se.Row <= res.Rejected[k-1].Row) {
			t.Fatalf("rejected %d: row %d (%v) is not the next bad row", k, se.Row, se)
		}
		want := "original_event.form_response.answers.linear_feet"
		if se.Row%10 == 9 {
			want = "assignment_id"
		}
		if se.Path != want {
			t.Fatalf("row %d: path %q, want %q (%v)", se.Row, se.Path, want, se)
		}
	}
	snap, _ := tb.Snapshot(t.Context())
	got, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8000 {
		t.Fatalf("table holds %d rows, want 8000", len(got))
	}
	for _, r := range got {
		var i int
		fmt.Sscanf(r["event_id"].(string), "evt-1-%d", &i)
		if bad[i] {
			t.Fatalf("rejected row %d is in the table", i)
		}
	}
	// Every data file on disk is referenced: rejection wrote nothing extra.
	n := 0
	_ = filepath.WalkDir(store.Location(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".parquet" && !contains(p, "_delta_log") {
			n++
		}
		return nil
	})
	if n != res.Files {
		t.Fatalf("%d data files on disk, commit has %d", n, res.Files)
	}

	// Every row rejected: nothing is committed, not even the txn.
	res, err = tb.Append(t.Context(), []map[string]any{rows[4], rows[9]}, AppendOptions{SchemaEvolution: true, RejectBadRows: true, Txns: []Txn{{AppID: "p", Version: 2}}})
	if err != nil || len(res.Rejected) != 2 || res.Rows != 0 || res.Version != 1 {
		t.Fatalf("all rejected: %+v, %v", res, err)
	}
	snap, _ = tb.Snapshot(t.Context())
	if v, _ := snap.TxnVersion("p"); v != 1 {
		t.Fatalf("txn %d, want 1", v)
	}
}

func BenchmarkAppendRejectBadRows(b *testing.B) {
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for _, n := range []int{10000} {
		rows, bad := rejectBatch(n, ts)
		b.Run(fmt.Sprintf("rows=%d/bad=%d", n, len(bad)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				tb, _ := newSpecTable(b)
				b.StartTimer()
				res, err := tb.Append(b.Context(), rows, AppendOptions{SchemaEvolution: true, RejectBadRows: true})
				if err != nil || len(res.Rejected) != len(bad) {
					b.Fatalf("%d rejected, %v", len(res.Rejected), err)
				}
			}
		})
	}
}
