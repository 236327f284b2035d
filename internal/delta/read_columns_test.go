package delta

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// eventsDef is a small table shaped like the dedupe state's source: a key,
// an event time, and a date partition.
const eventsDef = `
name: events
columns:
  - {name: event_id, type: string, nullable: false}
  - {name: event_timestamp, type: timestamp}
  - {name: n, type: long}
  - {name: payload, type: struct, fields: [{name: a, type: string}]}
  - {name: day, type: date}
partition_columns: [day]
`

func newEventsTable(t testing.TB, store Storage) *Table {
	t.Helper()
	def, err := ParseTableDef([]byte(eventsDef))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Create(t.Context(), store, def)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func eventRows(day time.Time, from, n int) []map[string]any {
	rows := make([]map[string]any, n)
	for i := range rows {
		ts := day.Add(time.Duration(from+i) * time.Second)
		rows[i] = map[string]any{
			"event_id":        fmt.Sprintf("evt-%s-%06d", day.Format("0102"), from+i),
			"event_timestamp": ts,
			"n":               int64(from + i),
			"payload":         map[string]any{"a": "x"},
			"day":             day,
		}
		if i%7 == 3 {
			rows[i]["event_timestamp"] = nil
		}
	}
	return rows
}

// readAllColumns collects every value ReadColumns reads, row by row.
func readAllColumns(t *testing.T, store Storage, snap *Snapshot, files []AddFile, cols []string) []map[string]any {
	t.Helper()
	var out []map[string]any
	err := ReadColumns(t.Context(), store, snap, files, cols, func(b *ColumnBatch) error {
		if b.Len() == 0 || b.Len() > columnBatchRows {
			t.Fatalf("batch of %d rows", b.Len())
		}
		for r := range b.Len() {
			m := make(map[string]any, len(cols))
			for c, name := range cols {
				v, err := b.Value(c, r)
				if err != nil {
					return err
				}
				m[name] = v
				if tm, ok := b.Time(c, r); ok && !tm.Equal(v.(time.Time)) {
					t.Fatalf("%s: Time %v, Value %v", name, tm, v)
				}
				if s, ok := v.(string); ok && string(b.Bytes(c, r)) != s {
					t.Fatalf("%s: Bytes %q, Value %q", name, b.Bytes(c, r), s)
				}
				if v == nil && b.Bytes(c, r) != nil {
					t.Fatalf("%s: Bytes of null %q", name, b.Bytes(c, r))
				}
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// project keeps cols of every row.
func project(rows []map[string]any, cols []string) []map[string]any {
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		out[i] = map[string]any{}
		for _, c := range cols {
			out[i][c] = r[c]
		}
	}
	return out
}

func checkAgainstReadRows(t *testing.T, store Storage, snap *Snapshot, cols []string) int {
	t.Helper()
	want, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	got := readAllColumns(t, store, snap, snap.Files(), cols)
	if !reflect.DeepEqual(got, project(want, cols)) {
		t.Fatalf("ReadColumns %v:\ngot  %v\nwant %v", cols, got, project(want, cols))
	}
	return len(got)
}

func TestReadColumnsMatchesReadRows(t *testing.T) {
	for _, kind := range []string{"local", "mem"} {
		t.Run(kind, func(t *testing.T) {
			var store Storage = newMemStorage()
			if kind == "local" {
				var err error
				if store, err = NewLocalStorage(t.TempDir()); err != nil {
					t.Fatal(err)
				}
			}
			tb := newEventsTable(t, store)
			d1 := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
			// 10,000 rows in one file: several batches, several pages.
			if _, err := tb.Append(t.Context(), eventRows(d1, 0, 10000), AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := tb.Append(t.Context(), eventRows(d1.AddDate(0, 0, 1), 0, 10), AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			snap, err := tb.Snapshot(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, cols := range [][]string{
				{"event_id", "event_timestamp"},
				{"event_timestamp", "event_id", "day", "n"},
				{"day"},
				{"n"},
			} {
				if n := checkAgainstReadRows(t, store, snap, cols); n != 10010 {
					t.Fatalf("%v: %d rows, want 10010", cols, n)
				}
			}
		})
	}
}

func TestReadColumnsErrors(t *testing.T) {
	store := newMemStorage()
	tb := newEventsTable(t, store)
	d1 := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	if _, err := tb.Append(t.Context(), eventRows(d1, 0, 10), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	noop := func(*ColumnBatch) error { return nil }
	for _, cols := range [][]string{nil, {"nope"}, {"payload"}, {"event_id", "Event_ID"}} {
		if err := ReadColumns(t.Context(), store, snap, snap.Files(), cols, noop); err == nil {
			t.Errorf("ReadColumns %v: no error", cols)
		}
	}
	stop := errors.New("stop")
	for _, cols := range [][]string{{"event_id"}, {"day"}} {
		if err := ReadColumns(t.Context(), store, snap, snap.Files(), cols, func(*ColumnBatch) error { return stop }); err != stop {
			t.Errorf("ReadColumns %v: callback error came back as %v", cols, err)
		}
	}
	for _, col := range []string{"nope", "event_id", "n"} {
		if _, err := FilesFrom(snap, snap.Files(), col, d1); err == nil {
			t.Errorf("FilesFrom %s: no error", col)
		}
	}
}

func paths(fs []AddFile) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Path)
	}
	return out
}

func TestFilesFromAndAddedFiles(t *testing.T) {
	store, err := NewLocalStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tb := newEventsTable(t, store)
	d := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	var snaps []*Snapshot
	for i := range 4 { // day i: times d+i days+[0, 100 s)
		if _, err := tb.Append(t.Context(), eventRows(d.AddDate(0, 0, i), 0, 100), AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		s, _ := tb.Snapshot(t.Context())
		snaps = append(snaps, s)
	}
	// A file without stats can never be pruned: strip them from a copy.
	last := snaps[3]
	all := last.Files()
	byDay := map[string]AddFile{}
	for _, f := range all {
		byDay[f.PartitionValues["day"]] = f
	}
	noStats := byDay["2026-01-10"]
	noStats.Stats = ""

	for _, c := range []struct {
		name  string
		col   string
		files []AddFile
		from  time.Time
		want  []string // partition days kept
	}{
		{"all", "event_timestamp", all, d, []string{"2026-01-10", "2026-01-11", "2026-01-12", "2026-01-13"}},
		{"last two days", "event_timestamp", all, d.AddDate(0, 0, 2), []string{"2026-01-12", "2026-01-13"}},
		// day 1's max is d+1d+99s: kept from the max on, and up to 1 ms
		// after it (stats are truncated to ms).
		{"at max", "event_timestamp", all, d.AddDate(0, 0, 1).Add(99 * time.Second), []string{"2026-01-11", "2026-01-12", "2026-01-13"}},
		{"within 1ms of max", "event_timestamp", all, d.AddDate(0, 0, 1).Add(99*time.Second + 999*time.Microsecond), []string{"2026-01-11", "2026-01-12", "2026-01-13"}},
		{"past max", "event_timestamp", all, d.AddDate(0, 0, 1).Add(99*time.Second + time.Millisecond), []string{"2026-01-12", "2026-01-13"}},
		{"none", "event_timestamp", all, d.AddDate(0, 0, 5), nil},
		{"no stats", "event_timestamp", []AddFile{noStats, byDay["2026-01-11"]}, d.AddDate(0, 0, 3), []string{"2026-01-10"}},
		{"partition date", "day", all, d.AddDate(0, 0, 2).Add(time.Hour), []string{"2026-01-12", "2026-01-13"}},
		{"partition date at midnight", "day", all, d.AddDate(0, 0, 2), []string{"2026-01-12", "2026-01-13"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := FilesFrom(last, c.files, c.col, c.from)
			if err != nil {
				t.Fatal(err)
			}
			var days []string
			for _, f := range got {
				days = append(days, f.PartitionValues["day"])
			}
			if !slices.Equal(days, c.want) {
				t.Fatalf("got days %v, want %v", days, c.want)
			}
		})
	}

	if got := AddedFiles(nil, last); !slices.Equal(paths(got), paths(all)) {
		t.Fatalf("AddedFiles(nil): %v", paths(got))
	}
	if got := AddedFiles(last, last); len(got) != 0 {
		t.Fatalf("AddedFiles(last, last): %v", paths(got))
	}
	got := AddedFiles(snaps[1], last)
	if want := []string{byDay["2026-01-12"].Path, byDay["2026-01-13"].Path}; !slices.Equal(paths(got), want) {
		t.Fatalf("AddedFiles(v2, v4): %v, want %v", paths(got), want)
	}
	// The incremental read sees exactly the rows committed since.
	rows := readAllColumns(t, store, last, got, []string{"event_id"})
	if len(rows) != 200 || rows[0]["event_id"] != "evt-0112-000000" {
		t.Fatalf("incremental read: %d rows, first %v", len(rows), rows[0])
	}
}

// TestReadColumnsReference reads reference tables written by Spark: INT96
// and micros timestamps, timestamp partitions (with a null one), stats with
// offsets, files without stats for the column.
func TestReadColumnsReference(t *testing.T) {
	for _, c := range []struct {
		dir  string
		cols []string
		from time.Time
		kept int // files FilesFrom(cols[0], from) keeps
	}{
		// Five files, one per row: times 1969, 2020, 1999, 2000 and a null
		// one (no min/max stats: kept); parts 1969, 2020, 2021 (two files)
		// and null (pruned).
		{"kernel-timestamp-TIMESTAMP_MICROS", []string{"time", "part", "id"}, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), 2},
		{"kernel-timestamp-TIMESTAMP_MICROS", []string{"part", "time"}, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), 2},
		{"kernel-timestamp-INT96", []string{"time", "part", "id"}, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), 2},
		{"kernel-timestamp-TIMESTAMP_MILLIS", []string{"time", "id"}, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), 2},
		// Stats with an offset: 2000-01-01T00:00:00.000-08:00 is 08:00 UTC.
		{"data-skipping-basic-stats-all-types", []string{"as_timestamp", "as_string", "as_date", "as_long"}, time.Date(2000, 1, 1, 8, 0, 0, 0, time.UTC), 1},
		{"data-skipping-basic-stats-all-types", []string{"as_timestamp"}, time.Date(2000, 1, 1, 8, 0, 0, 1e6, time.UTC), 0},
		// Partition values of every type, one null: no stats.
		{"data-reader-partition-values", []string{"as_timestamp", "as_int", "as_string", "value", "as_date"}, time.Time{}, 2},
	} {
		t.Run(c.dir+"/"+c.cols[0], func(t *testing.T) {
			store, err := NewLocalStorage(filepath.Join(testdataDir, "delta-golden", c.dir))
			if err != nil {
				t.Fatal(err)
			}
			tb, err := Open(t.Context(), store)
			if err != nil {
				t.Skipf("reference table not available: %v", err)
			}
			snap, err := tb.Snapshot(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if checkAgainstReadRows(t, store, snap, c.cols) == 0 {
				t.Fatal("no rows")
			}
			// FilesFrom may only drop files that hold no row at or after
			// from: check against the rows themselves.
			kept, err := FilesFrom(snap, snap.Files(), c.cols[0], c.from)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range snap.Files() {
				rows := readAllColumns(t, store, snap, []AddFile{f}, c.cols[:1])
				inWindow := false
				for _, r := range rows {
					if tm, ok := r[c.cols[0]].(time.Time); ok && !tm.Before(c.from) {
						inWindow = true
					}
				}
				isKept := slices.ContainsFunc(kept, func(k AddFile) bool { return k.Path == f.Path })
				if inWindow && !isKept {
					t.Errorf("file %s holds a row in the window but was pruned", f.Path)
				}
				t.Logf("%s: in window %v, kept %v, stats %s", f.Path, inWindow, isKept, f.Stats)
			}
			if len(kept) != c.kept {
				t.Fatalf("FilesFrom kept %d files, want %d", len(kept), c.kept)
			}
		})
	}
}

// TestReadColumnsAddedColumn reads a column that older files lack.
func TestReadColumnsAddedColumn(t *testing.T) {
	store := newMemStorage()
	tb := newEventsTable(t, store)
	d := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	if _, err := tb.Append(t.Context(), eventRows(d, 0, 5), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	rows := eventRows(d, 5, 5)
	for _, r := range rows {
		r["source"] = "sim"
	}
	if _, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	if snap.Schema().Field("source") == nil {
		t.Fatal("schema did not gain source")
	}
	got := readAllColumns(t, store, snap, snap.Files(), []string{"source", "event_id"})
	nulls := 0
	for _, r := range got {
		if r["source"] == nil {
			nulls++
		}
	}
	if len(got) != 10 || nulls != 5 {
		t.Fatalf("%d rows, %d null sources; want 10 and 5", len(got), nulls)
	}
	checkAgainstReadRows(t, store, snap, []string{"source", "event_id"})
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestReadColumnsReadsOnlyItsChunks checks that reading one column of a
// SPEC file through random access reads little more than its chunk: the
// property openDataFile relies on for a LocalStorage.
func TestReadColumnsReadsOnlyItsChunks(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	rows := make([]map[string]any, 5000)
	for i := range rows {
		rows[i] = specRow(3, i, ts)
	}
	if _, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	f := snap.Files()[0]
	p, err := store.(*LocalStorage).path(StorageKey(f.Path))
	if err != nil {
		t.Fatal(err)
	}
	osf, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer osf.Close()
	cr := &countingReaderAt{r: osf}
	pf, err := parquet.OpenFile(cr, f.Size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		t.Fatal(err)
	}
	root, err := buildPTree(pf.Metadata().Schema)
	if err != nil {
		t.Fatal(err)
	}
	n := root.child("event_id")
	b := &ColumnBatch{file: &f, cols: []batchCol{{name: "event_id", typ: TypeString, node: n, vals: make([]parquet.Value, columnBatchRows)}}}
	got := 0
	for _, rg := range pf.RowGroups() {
		if err := readRowGroupColumns(t.Context(), rg, b, &deletedCursor{}, func(b *ColumnBatch) error {
			for r := range b.Len() {
				if want := fmt.Sprintf("evt-3-%d", got); string(b.Bytes(0, r)) != want {
					t.Fatalf("row %d: %q, want %q", got, b.Bytes(0, r), want)
				}
				got++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got != len(rows) {
		t.Fatalf("%d rows, want %d", got, len(rows))
	}
	t.Logf("read %d of %d bytes", cr.n.Load(), f.Size)
	if cr.n.Load() > f.Size/3 {
		t.Fatalf("read %d bytes of a %d-byte file for one column", cr.n.Load(), f.Size)
	}
}
