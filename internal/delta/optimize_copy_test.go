package delta

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// compactRun is what one OPTIMIZE of a copy of a table did.
type compactRun struct {
	dir   string
	rows  []map[string]any // the table's rows after
	added []AddFile        // the files written, by partition and rows
	// moved and fellBack are the input files moved by column values and
	// read as maps.
	moved, fellBack int64
}

// compactCopy runs OPTIMIZE (bin-packing, MinFiles 2) on a copy of the
// table in src, moving rows by column values when move, else by maps only.
func compactCopy(t *testing.T, src string, move bool) compactRun {
	t.Helper()
	dir := copyDir(t, src)
	tb, store, before := openNoCompact(t, dir)
	defer tb.Close(t.Context())
	compactMoveOff.Store(!move)
	defer compactMoveOff.Store(false)
	moved, fell := compactMoved.Load(), compactFallbacks.Load()
	res, err := tb.Optimize(t.Context(), OptimizeOptions{MinFiles: 2})
	if err != nil {
		t.Fatalf("optimize: %v", err)
	}
	if res.Version < 0 || res.RemovedFiles == 0 {
		t.Fatalf("nothing optimized: %+v", res)
	}
	run := compactRun{dir: dir, moved: compactMoved.Load() - moved, fellBack: compactFallbacks.Load() - fell}
	after, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if run.rows, err = ReadRows(t.Context(), store, after); err != nil {
		t.Fatal(err)
	}
	old := map[string]bool{}
	for _, f := range before.Files() {
		old[f.Path] = true
	}
	for _, f := range after.Files() {
		if !old[f.Path] {
			run.added = append(run.added, f)
		}
	}
	keys := partitionKeyColumns(after)
	slices.SortFunc(run.added, func(a, b AddFile) int {
		da, _ := partitionDir(keys, a.PartitionValues)
		db, _ := partitionDir(keys, b.PartitionValues)
		if c := strings.Compare(da, db); c != 0 {
			return c
		}
		return strings.Compare(a.Stats, b.Stats)
	})
	return run
}

// openNoCompact opens the table in dir with auto-compaction off and reads
// its snapshot; the caller closes the table.
func openNoCompact(t testing.TB, dir string) (*Table, Storage, *Snapshot) {
	t.Helper()
	store, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Open(t.Context(), store, WithAutoCompact(AutoCompact{Disable: true}))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		tb.Close(t.Context())
		t.Fatal(err)
	}
	return tb, store, snap
}

// checkCompactBothWays compacts copies of the table in src with and without
// moving by column values and checks that both give the rows the table had
// and the same files: the same statistics and, when sameBytes, the same
// bytes (a map column with more than one entry a row is written in Go's
// map order by the map path, so its bytes vary). It returns the run that

// appendRowsOf appends n rows, row(0) … row(n-1), to tb in one Append.
func appendRowsOf(t testing.TB, tb *Table, n int, opts AppendOptions, row func(i int) map[string]any) {
	t.Helper()
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i] = row(i)
	}
	if _, err := tb.Append(t.Context(), rows, opts); err != nil {
		t.Fatal(err)
	}
}

// moved.
func checkCompactBothWays(t *testing.T, src string, sameBytes bool) compactRun {
	t.Helper()
	tb, store, snap := openNoCompact(t, src)
	want, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	tb.Close(t.Context())

	fast := compactCopy(t, src, true)
	slow := compactCopy(t, src, false)
	if slow.moved != 0 {
		t.Fatalf("map path moved %d files", slow.moved)
	}
	assertRows(t, fast.rows, want)
	assertRows(t, slow.rows, want)
	if len(fast.added) != len(slow.added) {
		t.Fatalf("%d files written, the map path wrote %d", len(fast.added), len(slow.added))
	}
	for i, f := range fast.added {
		g := slow.added[i]
		if f.Stats != g.Stats {
			t.Errorf("file %d stats:\n got %s\nwant %s", i, f.Stats, g.Stats)
		}
		if !sameBytes {
			continue
		}
		a := readTestFile(t, fast.dir, f)
		b := readTestFile(t, slow.dir, g)
		if !bytes.Equal(a, b) {
			t.Errorf("file %d (%d rows): %d bytes differ from the map path's %d", i, numRecords(f), len(a), len(b))
		}
	}
	return fast
}

func readTestFile(t *testing.T, dir string, f AddFile) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(StorageKey(f.Path))))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func numRecords(f AddFile) int64 {
	n, _ := f.NumRecords()
	return n
}

// The SPEC table: files of 45 to 1,000 rows (not multiples of the
// encoder's 256-row blocks), two partitions. Every file is moved; the
// result is byte for byte the map path's.
func TestCompactMoveSpecTable(t *testing.T) {
	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{Disable: true}))
	start := time.Date(2026, 1, 10, 23, 50, 0, 0, time.UTC)
	for k, n := range []int{333, 700, 1000, 45} {
		appendRowsOf(t, tb, n, AppendOptions{SchemaEvolution: true}, func(i int) map[string]any {
			return specRow(3, i+k*1000, start.Add(time.Duration(i)*time.Second))
		})
	}
	tb.Close(t.Context())
	run := checkCompactBothWays(t, store.Location(), true)
	if run.fellBack != 0 || run.moved != 6 {
		t.Fatalf("moved %d files, read %d as maps; want 6 moved", run.moved, run.fellBack)
	}
}

// Files written before the schema evolved (fields added to inferred
// structs) are read as maps; the last commit's files are moved.
func TestCompactMoveEvolvedSchema(t *testing.T) {
	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{Disable: true}))
	start := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	for c := 1; c <= 4; c++ {
		appendRowsOf(t, tb, 200, AppendOptions{SchemaEvolution: true}, func(i int) map[string]any {
			return specRow(c, i, start.Add(time.Duration(c*1000+i)*time.Second))
		})
	}
	tb.Close(t.Context())
	run := checkCompactBothWays(t, store.Location(), true)
	if run.fellBack != 3 || run.moved != 1 {
		t.Fatalf("moved %d files, read %d as maps; want 1 moved, 3 as maps", run.moved, run.fellBack)
	}
}

// nestedSchema has every type the writer writes, nested structs with a
// NOT NULL field, arrays (of strings, of structs), maps (of longs, of
// structs), partitioned by p.
const nestedSchema = `{"type":"struct","fields":[` +
	`{"name":"id","type":"string","nullable":false,"metadata":{}},` +
	`{"name":"s","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"l","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"i","type":"integer","nullable":true,"metadata":{}},` +
	`{"name":"sh","type":"short","nullable":true,"metadata":{}},` +
	`{"name":"by","type":"byte","nullable":true,"metadata":{}},` +
	`{"name":"d","type":"double","nullable":true,"metadata":{}},` +
	`{"name":"f","type":"float","nullable":true,"metadata":{}},` +
	`{"name":"b","type":"boolean","nullable":true,"metadata":{}},` +
	`{"name":"dt","type":"date","nullable":true,"metadata":{}},` +
	`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"ntz","type":"timestamp_ntz","nullable":true,"metadata":{}},` +
	`{"name":"dec","type":"decimal(10,2)","nullable":true,"metadata":{}},` +
	`{"name":"big","type":"decimal(30,5)","nullable":true,"metadata":{}},` +
	`{"name":"bin","type":"binary","nullable":true,"metadata":{}},` +
	`{"name":"st","type":{"type":"struct","fields":[` +
	`{"name":"a","type":"string","nullable":false,"metadata":{}},` +
	`{"name":"n","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"inner","type":{"type":"struct","fields":[{"name":"z","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}` +
	`]},"nullable":true,"metadata":{}},` +
	`{"name":"arr","type":{"type":"array","elementType":{"type":"struct","fields":[` +
	`{"name":"x","type":"string","nullable":true,"metadata":{}},{"name":"y","type":"long","nullable":true,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}},` +
	`{"name":"m","type":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"nullable":true,"metadata":{}},` +
	`{"name":"ms","type":{"type":"map","keyType":"string","valueType":{"type":"struct","fields":[{"name":"q","type":"string","nullable":true,"metadata":{}}]},"valueContainsNull":true},"nullable":true,"metadata":{}},` +
	`{"name":"p","type":"long","nullable":true,"metadata":{}}]}`

// nestedRow is row i of the nested table: every kind of value, nulls
// (every nullable column null in some rows), empty arrays and maps, long
// strings (stats truncate them), maps of up to mapEntries entries.
func nestedRow(i, mapEntries int) map[string]any {
	null := func(k int, v any) any {
		if i%k == 0 {
			return nil
		}
		return v
	}
	m := map[string]any{}
	ms := map[string]any{}
	for k := range i % (mapEntries + 1) {
		m[fmt.Sprintf("k%d", k)] = null(7, int64(i*k))
		ms[fmt.Sprintf("q%d", k)] = null(5, map[string]any{"q": null(3, fmt.Sprintf("v%d", i))})
	}
	var arr []any
	for k := range i % 4 {
		arr = append(arr, null(6, map[string]any{"x": null(4, strings.Repeat("x", k)), "y": int64(k - i)}))
	}
	if arr == nil {
		arr = []any{}
	}
	var tags []any
	for k := range i % 3 {
		tags = append(tags, null(5, fmt.Sprintf("t%d-%d", k, i%11)))
	}
	day := time.Date(2026, 1, 1+i%20, 0, 0, 0, 0, time.UTC)
	return map[string]any{
		"id":  fmt.Sprintf("row-%05d", i),
		"s":   null(4, fmt.Sprintf("%s-ü-%d", strings.Repeat("long string ", i%5), i%97)),
		"l":   null(5, int64(i)*1_000_003-int64(5_000_000)),
		"i":   null(6, int32(i%1000-500)),
		"sh":  null(7, int16(i%300-150)),
		"by":  null(8, int8(i%200-100)),
		"d":   null(9, float64(i)/7-100),
		"f":   null(10, float32(i)/3),
		"b":   null(3, i%2 == 0),
		"dt":  null(11, day),
		"ts":  null(12, day.Add(time.Duration(i)*time.Microsecond*1001)),
		"ntz": null(13, day.Add(time.Duration(i)*time.Second)),
		"dec": null(14, Decimal{Unscaled: big.NewInt(int64(i*37 - 900)), Scale: 2}),
		"big": null(15, Decimal{Unscaled: new(big.Int).Mul(big.NewInt(int64(i-300)), big.NewInt(1e15)), Scale: 5}),
		"bin": null(16, []byte{byte(i), 0, byte(i >> 8)}),
		"st": null(17, map[string]any{
			"a":     fmt.Sprintf("a%d", i%13),
			"n":     null(3, int64(i%50)),
			"inner": null(4, map[string]any{"z": null(5, fmt.Sprintf("z%d", i%9)), "tags": null(6, tags)}),
		}),
		"arr": null(18, arr),
		"m":   null(19, m),
		"ms":  null(20, ms),
		"p":   int64(i % 2),
	}
}

// nestedTable writes the nested table in a new folder: four commits of 37
// to 1,100 rows, maps of up to mapEntries entries, column mapping mode
// mode ("" for none).
func nestedTable(t *testing.T, mode string, mapEntries int) string {
	t.Helper()
	schema, err := ParseSchema(nestedSchema)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	var props map[string]string
	if mode != "" {
		props = map[string]string{"delta.columnMapping.mode": mode}
	}
	tb, err := Create(t.Context(), store, TableDef{Name: "nested", Schema: schema, PartitionColumns: []string{"p"}, Properties: props},
		WithAutoCompact(AutoCompact{Disable: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close(t.Context())
	next := 0
	for _, n := range []int{37, 1100, 600, 260} {
		appendRowsOf(t, tb, n, AppendOptions{}, func(i int) map[string]any { return nestedRow(next+i, mapEntries) })
		next += n
	}
	return dir
}

// Nested structs, arrays, maps, nulls and every leaf type, without and
// with column mapping (physical names, field ids): every file is moved
// and the files are the map path's, byte for byte when no map has two
// entries (the map path writes those in Go's map order), else the same
// rows and statistics.
func TestCompactMoveNestedTypes(t *testing.T) {
	for _, tc := range []struct {
		mode       string
		mapEntries int
	}{{"", 1}, {"name", 1}, {"id", 1}, {"", 3}, {"id", 3}} {
		t.Run(fmt.Sprintf("mapping=%s/entries=%d", tc.mode, tc.mapEntries), func(t *testing.T) {
			run := checkCompactBothWays(t, nestedTable(t, tc.mode, tc.mapEntries), tc.mapEntries <= 1)
			if run.fellBack != 0 || run.moved != 8 {
				t.Fatalf("moved %d files, read %d as maps; want 8 moved", run.moved, run.fellBack)
			}
		})
	}
}

// Other engines' tables (column mapping in id and name mode, type
// widening, deletion vectors), with two appends of their rows by this
// package: the appended files are moved; the others, and every file with
// a deletion vector, are read as maps; the result is the map path's.
func TestCompactMoveFeatureTables(t *testing.T) {
	for _, name := range []string{"table-with-columnmapping-mode-id", "table-with-columnmapping-mode-name", "type-widening", "type-widening-nested", "dv-partitioned-with-checkpoint"} {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, testdataTable(t, "delta-golden", name))
			tb, store, before := openNoCompact(t, dir)
			old, err := ReadRows(t.Context(), store, before)
			if err != nil {
				t.Fatal(err)
			}
			dvs := 0
			for _, f := range before.Files() {
				if len(f.DeletionVector) > 0 {
					dvs++
				}
			}
			for range 2 {
				if _, err := tb.Append(t.Context(), old, AppendOptions{}); err != nil {
					t.Fatalf("append: %v", err)
				}
			}
			tb.Close(t.Context())
			run := checkCompactBothWays(t, dir, !strings.Contains(name, "columnmapping") && name != "type-widening-nested")
			if run.moved == 0 {
				t.Errorf("no file moved")
			}
			if run.fellBack < int64(dvs) {
				t.Errorf("%d files read as maps, fewer than the %d with deletion vectors", run.fellBack, dvs)
			}
			t.Logf("moved %d, read as maps %d (%d with a DV)", run.moved, run.fellBack, dvs)
		})
	}
}

// BenchmarkCompaction measures the rewrite of one bin of the SPEC table:
// eight files of 2,500 rows (a worker's flush with flush_rows 2,500) into
// one, in memory storage, moving column values (path=move) or reading
// maps (path=maps); rows/s counts input rows.
func BenchmarkCompaction(b *testing.B) {
	const files, rowsPer = 8, 2500
	def, err := LoadTableDef(specTableDef)
	if err != nil {
		b.Fatal(err)
	}
	store := newMemStorage()
	tb, err := Create(b.Context(), store, def, WithAutoCompact(AutoCompact{Disable: true}), WithCheckpointInterval(1<<30))
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close(b.Context())
	start := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	for k := range files {
		appendRowsOf(b, tb, rowsPer, AppendOptions{SchemaEvolution: true}, func(i int) map[string]any {
			return specRow(3, k*rowsPer+i, start.Add(time.Duration(k*rowsPer+i)*time.Second/4))
		})
	}
	snap, err := tb.Snapshot(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	plan, err := compactionPlan(snap)
	if err != nil {
		b.Fatal(err)
	}
	bins, _, _ := planOptimize(snap, OptimizeOptions{MinFiles: 2}, DefaultTargetFileSize)
	if len(bins) != 1 || len(bins[0].files) != files {
		b.Fatalf("bins %+v", bins)
	}
	for _, path := range []string{"move", "maps"} {
		b.Run("path="+path, func(b *testing.B) {
			compactMoveOff.Store(path == "maps")
			defer compactMoveOff.Store(false)
			b.ReportAllocs()
			for b.Loop() {
				added, n, err := tb.rewriteBin(b.Context(), snap, plan, bins[0])
				if err != nil || n != files*rowsPer || len(added) != 1 {
					b.Fatalf("rewrite: %d rows, %v", n, err)
				}
				if err := store.Delete(b.Context(), StorageKey(added[0].Path)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(files*rowsPer*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// sameLayout takes a file of the plan's own schema, and no other: one with
// another field id, physical name, type, nullability or field order is
// read as maps.
func TestCompactMoveLayout(t *testing.T) {
	field := func(name, typ string, nullable bool, id int, phys string) string {
		return fmt.Sprintf(`{"name":%q,"type":%s,"nullable":%v,"metadata":{"delta.columnMapping.id":%d,"delta.columnMapping.physicalName":%q}}`, name, typ, nullable, id, phys)
	}
	schema := func(fields ...string) string {
		return `{"type":"struct","fields":[` + strings.Join(fields, ",") + `]}`
	}
	inner := `{"type":"struct","fields":[` + field("x", `"long"`, true, 3, "col-x") + `]}`
	base := []string{field("a", `"integer"`, true, 1, "col-a"), field("s", inner, true, 2, "col-s")}
	plan := func(t *testing.T, s, mode string) *writePlan {
		t.Helper()
		st, err := ParseSchema(s)
		if err != nil {
			t.Fatal(err)
		}
		p, err := newMappedWritePlan(st, 32, mode)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := plan(t, schema(base...), "id")
	// The schema of a file the plan wrote, as parquet-go opens it.
	enc := newFileEncoder(want, 1)
	if err := enc.add(map[string]any{"a": int32(1), "s": map[string]any{"x": int64(2)}}); err != nil {
		t.Fatal(err)
	}
	data, err := enc.encode()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if !sameLayout(pf.Schema(), want.schema) {
		t.Fatalf("a file of the plan is not of its layout:\n%s\n%s", pf.Schema(), want.schema)
	}
	for name, other := range map[string]string{
		"no column mapping": "",
		"another field id":  schema(field("a", `"integer"`, true, 9, "col-a"), base[1]),
		"a nested field id": schema(base[0], field("s", `{"type":"struct","fields":[`+field("x", `"long"`, true, 8, "col-x")+`]}`, true, 2, "col-s")),
		"a physical name":   schema(field("a", `"integer"`, true, 1, "col-b"), base[1]),
		"a narrower type":   schema(field("a", `"short"`, true, 1, "col-a"), base[1]),
		"a wider type":      schema(field("a", `"long"`, true, 1, "col-a"), base[1]),
		"NOT NULL":          schema(field("a", `"integer"`, false, 1, "col-a"), base[1]),
		"another order":     schema(base[1], base[0]),
		"a column fewer":    schema(base[0]),
	} {
		mode := "id"
		if other == "" {
			other, mode = schema(base...), ""
		}
		if sameLayout(plan(t, other, mode).schema, want.schema) {
			t.Errorf("%s: same layout", name)
		}
	}
}

// A string column holding bytes that are not UTF-8 (which this package
// never writes) fails the move as it fails the map path.
func TestCompactMoveInvalidUTF8(t *testing.T) {
	st, err := ParseSchema(`{"type":"struct","fields":[{"name":"s","type":"string","nullable":true,"metadata":{}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newWritePlan(st, 32)
	if err != nil {
		t.Fatal(err)
	}
	enc := newFileEncoder(p, 1)
	enc.appendValue(0, parquet.ByteArrayValue([]byte{'o', 'k', 0xff}), 0, 1)
	enc.n = 1
	data, err := enc.encode()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := readParquetRows(data, st)
	if err != nil {
		t.Fatal(err)
	}
	var se *SchemaError
	if err := newFileEncoder(p, 1).add(rows[0]); !errors.As(err, &se) {
		t.Fatalf("map path: %v, want a SchemaError", err)
	}
	moved, err := newFileEncoder(p, 1).moveRows(data)
	if !moved || !errors.As(err, &se) || se.Reason != "string is not valid UTF-8" {
		t.Fatalf("moved %v, %v; want a SchemaError", moved, err)
	}
}

// Input files of several pages a column (values of 2 KB), whose rows are
// not a multiple of the encoder's 256-row blocks: the output's pages are
// cut where the map path cuts them (the move hands the Parquet writer the
// same blocks of rows).
func TestCompactMoveLargeValues(t *testing.T) {
	schema, err := ParseSchema(`{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},` +
		`{"name":"s","type":"string","nullable":true,"metadata":{}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Create(t.Context(), store, TableDef{Name: "large", Schema: schema}, WithAutoCompact(AutoCompact{Disable: true}))
	if err != nil {
		t.Fatal(err)
	}
	for f := range 2 {
		appendRowsOf(t, tb, 1500, AppendOptions{}, func(i int) map[string]any {
			return map[string]any{"id": int64(f*10000 + i), "s": fmt.Sprintf("%d-%d-", f, i) + strings.Repeat(fmt.Sprint(i%10), 2000)}
		})
	}
	tb.Close(t.Context())
	if run := checkCompactBothWays(t, dir, true); run.moved != 2 || run.fellBack != 0 {
		t.Fatalf("moved %d files, read %d as maps; want 2 moved", run.moved, run.fellBack)
	}
}

// A data file that is not Parquet is not moved, and the map path's error
// fails the rewrite: its rows are never dropped.
func TestCompactMoveCorruptFileFails(t *testing.T) {
	dir := nestedTable(t, "", 1)
	tb, _, snap := openNoCompact(t, dir)
	defer tb.Close(t.Context())
	f := snap.Files()[0]
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(StorageKey(f.Path))), []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	fell := compactFallbacks.Load()
	res, err := tb.Optimize(t.Context(), OptimizeOptions{MinFiles: 2})
	if err == nil || !strings.Contains(err.Error(), StorageKey(f.Path)) {
		t.Fatalf("optimize: %+v, %v; want the error of %s", res, err, f.Path)
	}
	if compactFallbacks.Load() == fell {
		t.Fatal("the corrupt file was not read as maps")
	}
}
