package delta

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// encoderTestSchema has a leaf of each statistics kind, a nested struct
// whose leaves can all be null, and repeated columns (a list of structs and
// a map) that are cut into several writes.
var encoderTestSchema = &StructType{Fields: []*StructField{
	{Name: "s", Type: TypeString, Nullable: true},
	{Name: "l", Type: TypeLong, Nullable: true},
	{Name: "i", Type: TypeInteger, Nullable: true},
	{Name: "d", Type: TypeDouble, Nullable: true},
	{Name: "f", Type: TypeFloat, Nullable: true},
	{Name: "ts", Type: TypeTimestamp, Nullable: true},
	{Name: "ntz", Type: TypeTimestampNTZ, Nullable: true},
	{Name: "day", Type: TypeDate, Nullable: true},
	{Name: "b", Type: TypeBoolean, Nullable: true},
	{Name: "st", Type: &StructType{Fields: []*StructField{
		{Name: "z", Type: TypeString, Nullable: true},
		{Name: "a", Type: TypeLong, Nullable: true},
		{Name: "inner", Type: &StructType{Fields: []*StructField{
			{Name: "x", Type: TypeDouble, Nullable: true},
		}}, Nullable: true},
	}}, Nullable: true},
	{Name: "items", Type: &ArrayType{ElementType: &StructType{Fields: []*StructField{
		{Name: "k", Type: TypeString, Nullable: true},
		{Name: "v", Type: TypeLong, Nullable: true},
	}}, ContainsNull: true}, Nullable: true},
	{Name: "m", Type: &MapType{KeyType: TypeString, ValueType: TypeLong, ValueContainsNull: true}, Nullable: true},
}}

func encoderTestRows(n int, strs []string, floats []float64) []map[string]any {
	ts := time.Date(2026, 1, 10, 23, 59, 59, 999999999, time.UTC)
	rows := make([]map[string]any, n)
	for i := range rows {
		r := map[string]any{
			"s":   strs[i%len(strs)],
			"l":   float64(i - n/2),
			"i":   int32(i),
			"d":   floats[i%len(floats)],
			"f":   float32(i) / 3,
			"ts":  ts.Add(time.Duration(i) * time.Millisecond),
			"ntz": ts.Add(-time.Duration(i) * time.Hour).Format(time.RFC3339Nano),
			"day": "2026-01-10",
			"b":   i%2 == 0,
			"st": map[string]any{
				"z":     strs[(i+1)%len(strs)],
				"a":     nil,
				"inner": map[string]any{"x": nil},
			},
			"items": []any{map[string]any{"k": "a", "v": int64(i)}, map[string]any{"k": nil, "v": i}},
			"m":     map[string]any{"one": int64(i)},
		}
		if i%5 == 0 {
			r["items"] = []any{}
			r["st"] = nil
			r["m"] = nil
		}
		rows[i] = r
	}
	return rows
}

// encodeTestRows encodes rows as one file of p and returns it with its
// stats JSON and the reference encoding of those stats.
func encodeTestRows(t *testing.T, p *writePlan, rows []map[string]any) ([]byte, string, string) {
	t.Helper()
	data, _, stats, ref := encodeTestFile(t, p, rows, spoolOptions{})
	return data, stats, ref
}

// encodeTestFile is encodeTestRows for a file written as spool says; it
// also returns the Parquet writer that wrote the file.
//
//lint:ignore SA1019 see fileEncoder.w
func encodeTestFile(t *testing.T, p *writePlan, rows []map[string]any, spool spoolOptions) ([]byte, *parquet.Writer, string, string) {
	t.Helper()
	enc := newFileEncoder(p, len(rows))
	defer enc.release()
	enc.spoolTo(spool)
	for i, r := range rows {
		if err := enc.add(r); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	if err := enc.flush(); err != nil { // makes the writer
		t.Fatal(err)
	}
	w := enc.w
	data, err := enc.encode()
	if err != nil {
		t.Fatal(err)
	}
	return data, w, enc.statsJSON(), statsJSONReference(enc)
}

func TestStatsJSONMatchesEncodingJSON(t *testing.T) {
	long := strings.Repeat("é", 40)
	for _, c := range []struct {
		name   string
		strs   []string
		floats []float64
	}{
		{"plain", []string{"b", "a", "c"}, []float64{1.5, -2, 0}},
		{"escapes", []string{"<a&b>", "q\"\\\n\t\b\f\x01", "\u2028\u2029 ✓"}, []float64{1e-7, 1e21, math.Copysign(0, -1)}},
		{"long", []string{long, long + "x", strings.Repeat("z", 33), strings.Repeat(string(rune(0x10FFFF)), 40)}, []float64{123456789.125, 5e-324}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := newWritePlan(encoderTestSchema, 32)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 5, 7} {
				_, got, want := encodeTestRows(t, p, encoderTestRows(n, c.strs, c.floats))
				if got != want {
					t.Fatalf("%d rows: got %s, want %s", n, got, want)
				}
			}
		})
	}
	// Nothing indexed: empty objects.
	p, err := newWritePlan(encoderTestSchema, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, want := encodeTestRows(t, p, encoderTestRows(3, []string{"a"}, []float64{1})); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestEncoderReuse checks that pooled encoders and writers produce the same
// file as fresh ones, and that columns cut into several writes (repeated
// ones at row starts) read back as written.
func TestEncoderReuse(t *testing.T) {
	rows := encoderTestRows(3*rowsPerWrite+17, []string{"x", "y"}, []float64{1, 2})
	fresh := func() []byte {
		p, err := newWritePlan(encoderTestSchema, 32)
		if err != nil {
			t.Fatal(err)
		}
		data, _, _ := encodeTestRows(t, p, rows)
		return data
	}
	want := fresh()
	p, err := newWritePlan(encoderTestSchema, 32)
	if err != nil {
		t.Fatal(err)
	}
	// The Parquet writers are kept too, and Reset for the next file of
	// their layout: parquet-go v0.32.0 wrote an empty path_in_schema into
	// the footers of files after a writer's second Reset.
	writers := map[any]int{}
	encode := func(rows []map[string]any) []byte {
		data, w, _, _ := encodeTestFile(t, p, rows, spoolOptions{})
		writers[w]++
		return data
	}
	const rounds = 8
	for i := range rounds {
		small := encoderTestRows(10+i, []string{"q"}, []float64{3})
		encode(small)
		got := encode(rows)
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: reused encoder wrote %d bytes that differ from a fresh one's %d", i, len(got), len(want))
		}
	}
	// The small and the large files have one layout (the same columns
	// are dictionary encoded), so one writer writes them all.
	if len(writers) != 1 {
		t.Fatalf("%d Parquet writers wrote %d files of one layout, want 1", len(writers), 2*rounds)
	}
	back, err := readParquetRows(want, encoderTestSchema)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(rows) {
		t.Fatalf("got %d rows, want %d", len(back), len(rows))
	}
	for i, r := range back {
		want, err := CoerceRow(encoderTestSchema, rows[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"s", "l", "items", "m", "st"} {
			if got, w := fmt.Sprint(r[k]), fmt.Sprint(want[k]); got != w && !(want[k] == nil && isEmpty(r[k])) && !reflect.DeepEqual(r[k], want[k]) {
				t.Fatalf("row %d column %s: got %v, want %v", i, k, got, w)
			}
		}
	}
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		return len(x) == 0
	}
	return false
}

// TestIdleWriters checks that a plan reuses only a writer made for the same
// layout and page size, and keeps at most maxIdleWriters, dropping the
// oldest.
func TestIdleWriters(t *testing.T) {
	p, err := newWritePlan(encoderTestSchema, 32)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]writerKey, maxIdleWriters+2)
	for i := range keys {
		keys[i] = writerKey{layout: p.schema, page: 1000 + i}
	}
	//lint:ignore SA1019 see fileEncoder.w
	made := map[writerKey]*parquet.Writer{}
	for _, k := range keys {
		w := p.writer(k, io.Discard)
		made[k] = w
		p.putWriter(k, w)
	}
	if len(p.idle) != maxIdleWriters {
		t.Fatalf("%d idle writers, want %d", len(p.idle), maxIdleWriters)
	}
	for i, k := range keys {
		w := p.writer(k, io.Discard)
		if reused, dropped := w == made[k], i < len(keys)-maxIdleWriters; reused == dropped {
			t.Fatalf("writer %d (page %d): reused %v, but it was dropped: %v", i, k.page, reused, dropped)
		}
	}
	if len(p.idle) != 0 {
		t.Fatalf("%d idle writers left after taking each", len(p.idle))
	}
	// A rewrite's writer, made for larger pages and row groups, is not
	// kept; a commit's is.
	for _, c := range []struct {
		name  string
		spool spoolOptions
		kept  int
	}{
		{"rewrite", rewriteSpool(nil, 100), 0},
		{"commit", spoolOptions{}, 1},
	} {
		encodeTestFile(t, p, encoderTestRows(10, []string{"a"}, []float64{1}), c.spool)
		if len(p.idle) != c.kept {
			t.Fatalf("%s: %d idle writers, want %d", c.name, len(p.idle), c.kept)
		}
	}
}
