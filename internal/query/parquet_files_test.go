package query

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
)

// kpipeParquetFiles lists the Parquet files under dir: data files and
// checkpoints.
func kpipeParquetFiles(t *testing.T, dir string) (data, checkpoints []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		if strings.Contains(p, "_delta_log") {
			checkpoints = append(checkpoints, p)
		} else {
			data = append(data, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return data, checkpoints
}

// TestDuckDBParquetMetadata: DuckDB reads every file kpipe writes, data and
// checkpoint, and parquet_metadata() shows the encodings of DataPage V1
// files written for old readers: PLAIN or RLE_DICTIONARY values with RLE
// levels, never the V2-era DELTA_* encodings; the low-cardinality
// event_type column of the 600-row file has a dictionary, the unique
// event_id none.
func TestDuckDBParquetMetadata(t *testing.T) {
	f := newFixture(t)
	store, err := delta.OpenLocation(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := delta.Open(t.Context(), store, delta.WithSyncCheckpoints())
	if err != nil {
		t.Fatal(err)
	}
	// A larger commit, so the columns have enough values to choose by.
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var rows []map[string]any
	for i := range 600 {
		rows = append(rows, map[string]any{"event_id": fmt.Sprintf("evt-%06d", i), "event_type": "CUSTOM_TASK_ASSIGNED",
			"event_timestamp": ts, "processed_timestamp": ts, "task_id": 32513, "project_id": "p", "task_status": "assigned",
			"year": 2026, "month": 3, "day": 1})
	}
	if _, err := tb.Append(t.Context(), rows, delta.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	if err := tb.Checkpoint(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	tb.Close(t.Context())
	db, err := Open(t.Context(), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	data, checkpoints := kpipeParquetFiles(t, f.dir)
	if len(data) == 0 || len(checkpoints) == 0 {
		t.Fatalf("%d data files, %d checkpoints", len(data), len(checkpoints))
	}
	for _, p := range append(data, checkpoints...) {
		_, got := fetch(t, db, fmt.Sprintf("SELECT count(*) FROM read_parquet(%s)", literal(p)))
		if len(got) != 1 {
			t.Fatalf("%s: %v", p, got)
		}
		_, md := fetch(t, db, fmt.Sprintf("SELECT path_in_schema, encodings, dictionary_page_offset, num_values FROM parquet_metadata(%s)", literal(p)))
		for _, r := range md {
			col, enc := fmt.Sprint(r[0]), fmt.Sprint(r[1])
			for _, e := range strings.Split(enc, ",") {
				switch e = strings.TrimSpace(e); e {
				case "PLAIN", "RLE", "RLE_DICTIONARY", "PLAIN_DICTIONARY", "BIT_PACKED":
				default:
					t.Errorf("%s: column %s encoding %s (encodings %s)", filepath.Base(p), col, e, enc)
				}
			}
			if strings.Contains(p, "_delta_log") {
				continue
			}
			n, _ := r[3].(int64)
			dict := strings.Contains(enc, "DICTIONARY")
			switch {
			case col == "event_type" && n >= 100 && !dict:
				t.Errorf("%s: event_type (%d values) without a dictionary: %s", filepath.Base(p), n, enc)
			case col == "event_id" && dict:
				t.Errorf("%s: unique event_id dictionary encoded: %s", filepath.Base(p), enc)
			}
		}
	}
}

// TestDuckDBReadsFeatureTableAppends: the files kpipe appends to a copy of
// a column-mapped reference table read in DuckDB with the table's physical
// column names and the rows appended, and their field ids are the
// schema's.
func TestDuckDBReadsFeatureTableAppends(t *testing.T) {
	for _, name := range []string{"data-reader-timestamp_ntz-name-mode", "data-reader-timestamp_ntz-id-mode", "table-with-columnmapping-mode-id"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join("..", "..", "..", "shared", "testdata", "delta-golden", name)
			if _, err := os.Stat(src); err != nil {
				t.Skipf("reference table not available: %v", err)
			}
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
				t.Fatal(err)
			}
			store, _ := delta.OpenLocation(dir)
			tb, err := delta.Open(t.Context(), store)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := tb.Snapshot(t.Context())
			old, err := delta.ReadRows(t.Context(), store, before)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tb.Append(t.Context(), old, delta.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			after, _ := tb.Snapshot(t.Context())
			tb.Close(t.Context())
			// Any plain table serves as the DuckDB connection.
			db, err := Open(t.Context(), newFixture(t).dir)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			seen := map[string]bool{}
			for _, f := range before.Files() {
				seen[f.Path] = true
			}
			var n int64
			for _, f := range after.Files() {
				if seen[f.Path] {
					continue
				}
				p := filepath.Join(dir, filepath.FromSlash(delta.StorageKey(f.Path)))
				_, got := fetch(t, db, fmt.Sprintf("SELECT count(*) FROM read_parquet(%s, hive_partitioning = false)", literal(p)))
				c, _ := got[0][0].(int64)
				n += c
				_, md := fetch(t, db, fmt.Sprintf("SELECT name, field_id FROM parquet_schema(%s) WHERE name LIKE 'col-%%'", literal(p)))
				if len(md) == 0 {
					t.Fatalf("%s: no physical column names", f.Path)
				}
				for _, r := range md {
					fl := physicalField(after.Schema(), fmt.Sprint(r[0]))
					if fl == nil {
						t.Errorf("%s: column %v not in the schema's physical names", f.Path, r[0])
						continue
					}
					if id := fmt.Sprint(fl.Metadata["delta.columnMapping.id"]); id != fmt.Sprint(r[1]) {
						t.Errorf("%s: column %v field_id %v, schema id %s", f.Path, r[0], r[1], id)
					}
				}
			}
			if n != int64(len(old)) {
				t.Fatalf("DuckDB read %d appended rows, want %d", n, len(old))
			}
			// The table through the query view: old rows plus new, by
			// logical name, nested fields renamed.
			all, err := delta.ReadRows(t.Context(), store, after)
			if err != nil {
				t.Fatal(err)
			}
			qdb, err := Open(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			defer qdb.Close()
			_, got := fetch(t, qdb, "SELECT count(*) FROM "+ident(qdb.View()))
			if c, _ := got[0][0].(int64); c != int64(len(all)) || len(all) != 2*len(old) {
				t.Fatalf("view has %d rows, table %d, want %d", c, len(all), 2*len(old))
			}
			// Primitive and struct columns (the driver cannot scan every
			// map DuckDB has).
			var sel []string
			compared := &delta.StructType{}
			for _, f := range after.Schema().Fields {
				switch f.Type.(type) {
				case delta.PrimitiveType, *delta.StructType:
					if !strings.Contains(f.Type.String(), "map<") {
						sel = append(sel, ident(f.Name))
						compared.Fields = append(compared.Fields, f)
					}
				}
			}
			var want []string
			for _, r := range all {
				want = append(want, viewKey(r, compared))
			}
			cols, rows := fetch(t, qdb, "SELECT "+strings.Join(sel, ", ")+" FROM "+ident(qdb.View()))
			var gotKeys []string
			for _, r := range rows {
				m := map[string]any{}
				for i, c := range cols {
					m[c] = r[i]
				}
				gotKeys = append(gotKeys, viewKey(m, compared))
			}
			slices.Sort(want)
			slices.Sort(gotKeys)
			if !slices.Equal(want, gotKeys) {
				t.Fatalf("view rows differ from the table's:\n got %v\nwant %v", gotKeys, want)
			}
		})
	}
}

// viewKey summarises a row by its top-level primitive columns and the
// logical names of its struct fields, comparable across the table library
// and DuckDB.
func viewKey(r map[string]any, s *delta.StructType) string {
	var b strings.Builder
	for _, f := range s.Fields {
		v := r[f.Name]
		switch f.Type.(type) {
		case delta.PrimitiveType:
			switch x := v.(type) {
			case time.Time:
				v = x.UTC().Format(time.RFC3339Nano)
			case []byte:
				v = string(x)
			case nil:
			default:
				v = fmt.Sprint(x)
			}
			fmt.Fprintf(&b, "%s=%v;", f.Name, v)
		case *delta.StructType:
			m, _ := v.(map[string]any)
			keys := slices.Sorted(maps.Keys(m))
			fmt.Fprintf(&b, "%s=%v;", f.Name, keys)
		}
	}
	return b.String()
}

// physicalField finds the field of schema (at any depth) whose physical
// name is name.
func physicalField(s *delta.StructType, name string) *delta.StructField {
	var found *delta.StructField
	var walk func(t delta.DataType)
	walk = func(t delta.DataType) {
		switch t := t.(type) {
		case *delta.StructType:
			for _, f := range t.Fields {
				if f.Metadata["delta.columnMapping.physicalName"] == name {
					found = f
				}
				walk(f.Type)
			}
		case *delta.ArrayType:
			walk(t.ElementType)
		case *delta.MapType:
			walk(t.KeyType)
			walk(t.ValueType)
		}
	}
	walk(s)
	return found
}
