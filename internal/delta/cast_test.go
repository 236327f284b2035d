package delta

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// castTable is a table with one column of each primitive kind the casts
// concern, and a struct with a nested string, partitioned by p (long).
func castTable(t *testing.T, props map[string]string) (*Table, Storage) {
	t.Helper()
	schema, err := ParseSchema(`{"type":"struct","fields":[` +
		`{"name":"id","type":"string","nullable":false,"metadata":{}},` +
		`{"name":"s","type":"string","nullable":true,"metadata":{}},` +
		`{"name":"n","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"i","type":"integer","nullable":true,"metadata":{}},` +
		`{"name":"d","type":"double","nullable":true,"metadata":{}},` +
		`{"name":"b","type":"boolean","nullable":true,"metadata":{}},` +
		`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
		`{"name":"dec","type":"decimal(10,2)","nullable":true,"metadata":{}},` +
		`{"name":"st","type":{"type":"struct","fields":[{"name":"x","type":"string","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},` +
		`{"name":"p","type":"long","nullable":true,"metadata":{}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	store, err := NewLocalStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Create(t.Context(), store, TableDef{Name: "casts", Schema: schema, PartitionColumns: []string{"p"}, Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	return tb, store
}

// By default a value whose JSON type is not its column's is a rejected
// row (a type conflict), never a silent conversion: a number or boolean
// for a string column, a string for a number or boolean column.
func TestStrictValuesByDefault(t *testing.T) {
	tb, store := castTable(t, nil)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		col string
		v   any
	}{
		{"s", int64(32513)}, {"s", 12.5}, {"s", true}, {"s", json.Number("7")},
		{"n", "32513"}, {"n", true}, {"n", 12.5},
		{"i", "1"}, {"d", "12.5"}, {"d", false},
		{"b", "true"}, {"b", int64(1)},
		{"ts", int64(1700000000)},
		{"st.x", int64(5)},
		{"p", "2026"},
	}
	var rows []map[string]any
	for i, c := range cases {
		r := map[string]any{"id": fmt.Sprint("bad-", i)}
		if c.col == "st.x" {
			r["st"] = map[string]any{"x": c.v}
		} else {
			r[c.col] = c.v
		}
		rows = append(rows, r)
	}
	// Lossless values of the column's own JSON type, and strings for the
	// types JSON lacks, are stored.
	ok := []map[string]any{
		{"id": "ok-0", "s": "x", "n": int64(5), "i": 7.0, "d": int64(3), "b": true, "ts": "2026-01-10T12:00:00.5Z", "dec": "12.34", "st": map[string]any{"x": "y"}, "p": int64(1)},
		{"id": "ok-1", "n": json.Number("9007199254740993"), "d": json.Number("1.5"), "ts": ts, "dec": 5.25, "p": 2.0},
	}
	rows = append(rows, ok...)
	res, err := tb.Append(t.Context(), rows, AppendOptions{RejectBadRows: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != len(cases) || res.Rows != 2 {
		t.Fatalf("rows %d rejected %v; want 2 rows and %d rejected", res.Rows, res.Rejected, len(cases))
	}
	for k, se := range res.Rejected {
		c := cases[se.Row]
		if se.Row != k || se.Path != c.col || se.Existing == "" || se.Incoming == "" {
			t.Fatalf("rejection %d: %v; want a type conflict at %q", k, se, c.col)
		}
	}
	snap, _ := tb.Snapshot(t.Context())
	got, err := ReadRows(t.Context(), store, snap)
	if err != nil || len(got) != 2 {
		t.Fatalf("read %d rows, %v", len(got), err)
	}
	// Without RejectBadRows the first such row fails the Append.
	_, err = tb.Append(t.Context(), rows[:1], AppendOptions{})
	var se *SchemaError
	if !errors.As(err, &se) || se.Row != 0 || se.Path != "s" {
		t.Fatalf("got %v, want a row 0 SchemaError at s", err)
	}
}

// A cast the caller sets for a column converts exactly that column.
func TestAppendCasts(t *testing.T) {
	tb, store := castTable(t, nil)
	casts := map[string]Cast{
		"s": CastToString, "st.x": CastToString,
		"n": CastFromString, "i": CastFromString, "d": CastFromString, "b": CastFromString, "p": CastFromString,
	}
	rows := []map[string]any{
		{"id": "r0", "s": int64(32513), "n": "32513", "i": "-7", "d": "12.5", "b": "true", "st": map[string]any{"x": true}, "p": "2026"},
		{"id": "r1", "s": 12.5, "n": int64(4), "d": 1.0, "b": false, "st": map[string]any{"x": 1e21}, "p": int64(2026)},
		{"id": "r2", "s": true, "st": map[string]any{"x": "plain"}, "p": "7"},
		// Casts do not make bad text fit.
		{"id": "r3", "n": "12.5"},
		{"id": "r4", "i": "3000000000"},
		{"id": "r5", "b": "yes"},
		{"id": "r6", "d": "NaN"},
		{"id": "r7", "id2": nil, "s": map[string]any{"a": "b"}},
		// A column without a cast stays strict.
		{"id": "r8", "dec": true},
	}
	res, err := tb.Append(t.Context(), rows, AppendOptions{RejectBadRows: true, Casts: casts})
	if err != nil {
		t.Fatal(err)
	}
	var rej []string
	for _, se := range res.Rejected {
		rej = append(rej, fmt.Sprintf("%d:%s", se.Row, se.Path))
	}
	if want := "[3:n 4:i 5:b 6:d 7:s 8:dec]"; fmt.Sprint(rej) != want {
		t.Fatalf("rejected %v (%v), want %s", rej, res.Rejected, want)
	}
	snap, _ := tb.Snapshot(t.Context())
	got, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]any{}
	for _, r := range got {
		byID[r["id"].(string)] = r
	}
	want := map[string]map[string]any{
		"r0": {"s": "32513", "n": int64(32513), "i": int32(-7), "d": 12.5, "b": true, "x": "true", "p": int64(2026)},
		"r1": {"s": "12.5", "n": int64(4), "d": 1.0, "b": false, "x": "1e+21", "p": int64(2026)},
		"r2": {"s": "true", "x": "plain", "p": int64(7)},
	}
	if len(byID) != len(want) {
		t.Fatalf("table holds %v", byID)
	}
	for id, w := range want {
		r := byID[id]
		for col, v := range w {
			g := r[col]
			if col == "x" {
				g = r["st"].(map[string]any)["x"]
			}
			if !reflect.DeepEqual(g, v) {
				t.Fatalf("%s.%s = %#v, want %#v", id, col, g, v)
			}
		}
	}
}

func TestCastsRefusedForTheWrongColumnType(t *testing.T) {
	tb, _ := castTable(t, nil)
	for _, casts := range []map[string]Cast{{"n": CastToString}, {"s": CastFromString}, {"st": CastToString}, {"ts": CastFromString}} {
		_, err := tb.Append(t.Context(), []map[string]any{{"id": "x"}}, AppendOptions{Casts: casts})
		if err == nil || isSchemaError(err) {
			t.Fatalf("casts %v: got %v, want a configuration error", casts, err)
		}
	}
	// A path the schema lacks is left alone: it may come by evolution.
	if _, err := tb.Append(t.Context(), []map[string]any{{"id": "x"}}, AppendOptions{Casts: map[string]Cast{"later": CastToString}}); err != nil {
		t.Fatal(err)
	}
}

func TestCoerceValue(t *testing.T) {
	for _, tc := range []struct {
		t    DataType
		v    any
		cast Cast
		want any
		err  bool
	}{
		{TypeString, "a", CastNone, "a", false},
		{TypeString, int64(1), CastNone, nil, true},
		{TypeString, int64(-12), CastToString, "-12", false},
		{TypeString, 0.000001, CastToString, "0.000001", false},
		{TypeString, 1e-7, CastToString, "1e-7", false},
		{TypeString, float32(2.5), CastToString, "2.5", false},
		{TypeString, false, CastToString, "false", false},
		{TypeString, "s", CastToString, "s", false},
		{TypeLong, "9223372036854775807", CastFromString, int64(9223372036854775807), false},
		{TypeLong, "9223372036854775808", CastFromString, nil, true},
		{TypeLong, " 1", CastFromString, nil, true},
		{TypeLong, 3.0, CastFromString, int64(3), false},
		{TypeShort, "40000", CastFromString, nil, true},
		{TypeFloat, "0.5", CastFromString, float32(0.5), false},
		{TypeDouble, "Inf", CastFromString, nil, true},
		{TypeBoolean, "false", CastFromString, false, false},
		{TypeBoolean, "False", CastFromString, nil, true},
		{TypeTimestamp, "2026-01-10T12:00:00Z", CastNone, time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC), false},
	} {
		got, err := CoerceValue(tc.t, tc.v, "c", tc.cast)
		if (err != nil) != tc.err || (!tc.err && !reflect.DeepEqual(got, tc.want)) {
			t.Fatalf("CoerceValue(%s, %#v, %s) = %#v, %v; want %#v, error %v", tc.t, tc.v, tc.cast, got, err, tc.want, tc.err)
		}
		if err != nil && !isSchemaError(err) {
			t.Fatalf("error %v is not a *SchemaError", err)
		}
	}
	for _, name := range []string{"none", "to_string", "from_string"} {
		c, err := ParseCast(name)
		if err != nil || c.String() != name {
			t.Fatalf("ParseCast(%q) = %v, %v", name, c, err)
		}
	}
	if _, err := ParseCast("lenient"); err == nil {
		t.Fatal("ParseCast accepted an unknown name")
	}
}

// Timestamps and dates are read as the pipeline has always read them:
// RFC 3339, without a zone (UTC) or a date alone.
func TestCoerceTimes(t *testing.T) {
	noon := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	midnight := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    DataType
		v    string
		want any
	}{
		{TypeTimestamp, "2026-01-10T12:00:00Z", noon},
		{TypeTimestamp, "2026-01-10T13:00:00+01:00", noon},
		{TypeTimestamp, "2026-01-10T12:00:00", noon},
		{TypeTimestamp, "2026-01-10T12:00:00.000001234", noon.Add(time.Microsecond)},
		{TypeTimestampNTZ, "2026-01-10T12:00:00", noon},
		{TypeTimestamp, "2026-01-10", midnight},
		{TypeDate, "2026-01-10", midnight},
		{TypeDate, "2026-01-10T23:30:00-01:00", time.Date(2026, 1, 11, 0, 0, 0, 0, time.UTC)},
		{TypeTimestamp, "10/01/2026", nil},
		{TypeDate, "", nil},
	} {
		got, err := CoerceValue(tc.t, tc.v, "c", CastNone)
		if tc.want == nil {
			if !isSchemaError(err) {
				t.Fatalf("CoerceValue(%s, %q) = %v, %v; want a *SchemaError", tc.t, tc.v, got, err)
			}
			continue
		}
		if err != nil || !got.(time.Time).Equal(tc.want.(time.Time)) {
			t.Fatalf("CoerceValue(%s, %q) = %v, %v; want %v", tc.t, tc.v, got, err, tc.want)
		}
	}
}

// CoerceColumn checks only the kind of a struct or array value (Append
// coerces its contents after evolution) and converts primitives as
// CoerceValue does.
func TestCoerceColumn(t *testing.T) {
	st := &StructType{Fields: []*StructField{{Name: "a", Type: TypeLong, Nullable: true}}}
	obj := map[string]any{"a": "not a long", "new": 1.0}
	if got, err := CoerceColumn(st, obj, "s", CastNone); err != nil || !reflect.DeepEqual(got, obj) {
		t.Fatalf("struct: got %v, %v; want the object unchanged", got, err)
	}
	arr := &ArrayType{ElementType: TypeString, ContainsNull: true}
	if got, err := CoerceColumn(arr, []any{1.0}, "l", CastNone); err != nil || !reflect.DeepEqual(got, []any{1.0}) {
		t.Fatalf("array: got %v, %v; want the array unchanged", got, err)
	}
	for _, tc := range []struct {
		t    DataType
		v    any
		want string
	}{
		{st, "x", `delta: schema: column "c": string value is not an object`},
		{st, []any{}, `delta: schema: column "c": array value is not an object`},
		{arr, 2.0, `delta: schema: column "c": integer value is not an array`},
	} {
		_, err := CoerceColumn(tc.t, tc.v, "c", CastNone)
		if err == nil || err.Error() != tc.want || !isSchemaError(err) {
			t.Fatalf("CoerceColumn(%s, %v) = %v, want %s", tc.t, tc.v, err, tc.want)
		}
	}
	if got, err := CoerceColumn(TypeLong, "12", "c", CastFromString); err != nil || got != int64(12) {
		t.Fatalf("cast: got %v, %v", got, err)
	}
	if _, err := CoerceColumn(TypeString, 12.0, "c", CastNone); !isSchemaError(err) {
		t.Fatalf("strict: got %v, want a *SchemaError", err)
	}
	if got, err := CoerceColumn(TypeTimestamp, "2026-01-10T12:00:00", "c", CastNone); err != nil || !got.(time.Time).Equal(time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("timestamp: got %v, %v", got, err)
	}
}
