package delta

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// eventRow is a row of the spec table whose original_event holds extra.
func eventRow(i int, ts time.Time, extra map[string]any) map[string]any {
	r := answersRow(i, ts, float64(i)+0.5)
	oe := r["original_event"].(map[string]any)
	for k, v := range extra {
		oe[k] = v
	}
	return r
}

func readByEvent(t *testing.T, tb *Table, store Storage) map[string]map[string]any {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, r := range rows {
		out[r["event_id"].(string)] = r
	}
	return out
}

// Two rows of one Append that give a new field different types: the first
// typed value decides the type, the later rows that conflict are rejected
// as type conflicts, and the rest commits, as if the rows had been appended
// one at a time. (Found end to end: one object and one string in the same
// flush failed the whole Append, "rows checked one by one fail together",
// and the worker exited at every restart.)
func TestAppendNewFieldConflictInOneFlush(t *testing.T) {
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		vals []any // original_event.newf of rows 0, 1, ...
		// rejected rows; the others commit
		rejected []int
		// want is the type newf ends with
		want string
		// null: rows that read newf as null
		null []int
	}{
		{"object then string", []any{map[string]any{"x": "y"}, "str"}, []int{1}, "struct<x:string>", nil},
		{"string then object", []any{"str", map[string]any{"x": "y"}}, []int{1}, "string", nil},
		{"empty object then string", []any{map[string]any{}, "str"}, nil, "string", []int{0}},
		{"object of nulls then string", []any{map[string]any{"a": nil}, "str"}, nil, "string", []int{0}},
		{"empty array then string", []any{[]any{}, "str"}, nil, "string", []int{0}},
		{"string then empty object", []any{"str", map[string]any{}}, []int{1}, "string", nil},
		{"empty object, object, string", []any{map[string]any{}, map[string]any{"x": int64(1)}, "str", map[string]any{"x": int64(2)}}, []int{2}, "struct<x:double>", []int{0}},
		{"number then object then array", []any{1.5, map[string]any{"x": "y"}, []any{"a"}, 2.5}, []int{1, 2}, "double", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, store := newSpecTable(t)
			var rows []map[string]any
			for i, v := range tc.vals {
				rows = append(rows, eventRow(i, ts, map[string]any{"newf": v}))
			}
			res, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true, RejectBadRows: true, Txns: []Txn{{AppID: "w-t-0", Version: 9}}})
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, se := range res.Rejected {
				got = append(got, se.Row)
				if se.Path != "original_event.newf" || se.Existing == "" {
					t.Fatalf("rejection %v: want a type conflict at original_event.newf", se)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.rejected) {
				t.Fatalf("rejected rows %v, want %v", got, tc.rejected)
			}
			if want := int64(len(rows) - len(tc.rejected)); res.Rows != want || res.Version != 1 {
				t.Fatalf("rows %d version %d, want %d rows at version 1", res.Rows, res.Version, want)
			}
			snap, _ := tb.Snapshot(t.Context())
			if v, _ := snap.TxnVersion("w-t-0"); v != 9 {
				t.Fatalf("txn %d, want 9", v)
			}
			f := snap.Schema().Field("original_event").Type.(*StructType).Field("newf")
			if f == nil || f.Type.String() != tc.want {
				t.Fatalf("newf is %v, want %s", f, tc.want)
			}
			byID := readByEvent(t, tb, store)
			if len(byID) != int(res.Rows) {
				t.Fatalf("table holds %d rows, want %d", len(byID), res.Rows)
			}
			for i := range rows {
				r, ok := byID[fmt.Sprintf("evt-1-%d", i)]
				if ok == containsInt(tc.rejected, i) {
					t.Fatalf("row %d in table: %v, rejected: %v", i, ok, containsInt(tc.rejected, i))
				}
				if !ok {
					continue
				}
				nv := r["original_event"].(map[string]any)["newf"]
				if (nv == nil) != containsInt(tc.null, i) {
					t.Fatalf("row %d reads newf = %#v", i, nv)
				}
			}
		})
	}
}

// Several new fields and many rows in one Append: each field's type comes
// from its first typed value, and each row is rejected for its own
// conflict only.
func TestAppendNewFieldConflictsManyRows(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var rows []map[string]any
	bad := map[int]string{}
	for i := range 300 {
		extra := map[string]any{}
		switch i % 6 {
		case 0:
			extra["a"] = map[string]any{"k": fmt.Sprint(i)}
			extra["b"] = []any{}
			if i == 0 {
				// No type yet: null, although row 2 types b in this Append.
				extra["b"] = map[string]any{}
			}
		case 1:
			extra["a"] = "flat"
			bad[i] = "original_event.a"
		case 2:
			extra["b"] = []any{"x"} // b's first typed value when i == 2
			extra["c"] = int64(i)
		case 3:
			extra["b"] = map[string]any{"k": "v"}
			bad[i] = "original_event.b"
		case 4:
			extra["c"] = map[string]any{"n": int64(i)}
			bad[i] = "original_event.c"
		case 5:
			extra["a"] = map[string]any{"k": "z", "more": true}
			extra["c"] = nil
		}
		rows = append(rows, eventRow(i, ts.Add(time.Duration(i)*time.Hour), extra))
	}
	res, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true, RejectBadRows: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != len(bad) || res.Rows != int64(len(rows)-len(bad)) {
		t.Fatalf("rows %d rejected %d, want %d and %d", res.Rows, len(res.Rejected), len(rows)-len(bad), len(bad))
	}
	for _, se := range res.Rejected {
		if bad[se.Row] != se.Path {
			t.Fatalf("row %d rejected at %q (%v), want %q", se.Row, se.Path, se, bad[se.Row])
		}
	}
	snap, _ := tb.Snapshot(t.Context())
	oe := snap.Schema().Field("original_event").Type.(*StructType)
	for name, want := range map[string]string{"a": "struct<k:string,more:boolean>", "b": "array<string>", "c": "double"} {
		if f := oe.Field(name); f == nil || f.Type.String() != want {
			t.Fatalf("field %s is %v, want %s", name, f, want)
		}
	}
	byID := readByEvent(t, tb, store)
	if len(byID) != int(res.Rows) {
		t.Fatalf("table holds %d rows, want %d", len(byID), res.Rows)
	}
	for i := range rows {
		r, ok := byID[fmt.Sprintf("evt-1-%d", i)]
		if _, isBad := bad[i]; ok == isBad {
			t.Fatalf("row %d in table %v, bad %v", i, ok, isBad)
		}
		if ok && i == 0 && r["original_event"].(map[string]any)["b"] != nil {
			t.Fatalf("row %d: b = %#v, want null", i, r["original_event"].(map[string]any)["b"])
		}
	}
}

// Without RejectBadRows, schema evolution of one Append also stores a
// value without a type as null when a later row types its field.
func TestAppendEvolutionUntypeableThenTyped(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	rows := []map[string]any{eventRow(0, ts, map[string]any{"newf": map[string]any{}}), eventRow(1, ts, map[string]any{"newf": "s"})}
	in0 := rows[0]["original_event"].(map[string]any)
	res, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true})
	if err != nil || res.Rows != 2 {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, ok := in0["newf"]; !ok {
		t.Fatal("Append changed the caller's row")
	}
	byID := readByEvent(t, tb, store)
	if v := byID["evt-1-0"]["original_event"].(map[string]any)["newf"]; v != nil {
		t.Fatalf("row 0 newf = %#v, want null", v)
	}
	if v := byID["evt-1-1"]["original_event"].(map[string]any)["newf"]; v != "s" {
		t.Fatalf("row 1 newf = %#v, want s", v)
	}
}

// deepValue nests n objects: {"d":{"d":...{"d":"leaf"}}}.
func deepValue(n int) any {
	var v any = "leaf"
	for range n {
		v = map[string]any{"d": v}
	}
	return v
}

// A value nested deeper than Parquet's 255 levels is a rejected row
// wrapping ErrTooDeep, not a panic inside the writer; the rest commits.
func TestAppendRejectsTooDeep(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	rows := []map[string]any{
		eventRow(0, ts, map[string]any{"deep": deepValue(100)}),
		eventRow(1, ts, map[string]any{"deep2": deepValue(300)}),
		eventRow(2, ts, map[string]any{"list": []any{[]any{[]any{"x"}}}}),
	}
	// Arrays take more levels each than objects.
	var arr any = "x"
	for range 130 {
		arr = []any{arr}
	}
	rows = append(rows, eventRow(3, ts, map[string]any{"arrs": arr}))
	res, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true, RejectBadRows: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 2 || res.Rejected[0].Row != 1 || res.Rejected[1].Row != 3 || res.Rows != 2 {
		t.Fatalf("rows %d, rejected %v; want rows 1 and 3 rejected", res.Rows, res.Rejected)
	}
	for _, se := range res.Rejected {
		if !errors.Is(se, ErrTooDeep) || se.Existing != "" {
			t.Fatalf("rejection %v does not wrap ErrTooDeep", se)
		}
		if !strings.HasPrefix(se.Path, "original_event.") {
			t.Fatalf("rejection path %q", se.Path)
		}
	}
	if got := len(readByEvent(t, tb, store)); got != 2 {
		t.Fatalf("table holds %d rows, want 2", got)
	}
	// Without RejectBadRows the Append fails with the same error, and
	// writes nothing.
	_, err = tb.Append(t.Context(), rows[1:2], AppendOptions{SchemaEvolution: true})
	var se *SchemaError
	if !errors.As(err, &se) || !errors.Is(err, ErrTooDeep) || se.Row != 0 {
		t.Fatalf("got %v, want a row 0 SchemaError wrapping ErrTooDeep", err)
	}
}

// A panic inside the encoder is an error, never a crash: recovered per
// row into a rejected row wrapping ErrEncoding.
func TestEncoderPanicIsRecovered(t *testing.T) {
	tb, _ := newSpecTable(t)
	snap, _ := tb.Snapshot(t.Context())
	plan, err := tb.writePlanFor(snap, snap.Schema())
	if err != nil {
		t.Fatal(err)
	}
	enc := newFileEncoder(plan, 1)
	scratch := enc.scratch
	enc.scratch = nil // shredding indexes out of range
	err = enc.safeAddRow(specRow(1, 0, time.Now()), -1)
	enc.scratch = scratch
	enc.release()
	var se *SchemaError
	if !errors.As(err, &se) || !errors.Is(err, ErrEncoding) {
		t.Fatalf("got %v, want a SchemaError wrapping ErrEncoding", err)
	}
}

func containsInt(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
