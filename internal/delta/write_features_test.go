package delta

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// featureTables are reference tables with writer features this package
// honours when appending (column mapping in id and name mode, type
// widening, timestampNtz under column mapping).
var featureTables = []string{
	"table-with-columnmapping-mode-id",
	"table-with-columnmapping-mode-name",
	"data-reader-timestamp_ntz-id-mode",
	"data-reader-timestamp_ntz-name-mode",
	"data-skipping-basic-stats-all-types-columnmapping-id",
	"data-skipping-basic-stats-all-types-columnmapping-name",
	"type-widening",
	"type-widening-nested",
}

// TestMappedTablesReadLikeTheirTwins: a table written with column mapping
// reads equal to the same data written without it (the generators write
// the same rows in each mode).
func TestMappedTablesReadLikeTheirTwins(t *testing.T) {
	for _, tc := range [][]string{
		{"data-reader-timestamp_ntz", "data-reader-timestamp_ntz-id-mode", "data-reader-timestamp_ntz-name-mode"},
		{"data-skipping-basic-stats-all-types", "data-skipping-basic-stats-all-types-columnmapping-id", "data-skipping-basic-stats-all-types-columnmapping-name"},
		{"table-with-columnmapping-mode-id", "table-with-columnmapping-mode-name", "table-with-icebegCompatV2Enabled"},
	} {
		t.Run(tc[0], func(t *testing.T) {
			base := readTable(t, testdataTable(t, "delta-golden", tc[0]))
			if len(base) == 0 {
				t.Fatal("no rows")
			}
			for _, twin := range tc[1:] {
				assertRows(t, readTable(t, testdataTable(t, "delta-golden", twin)), base)
			}
		})
	}
	// data-reader-timestamp_ntz: ids 0..8, three tsNtz values crossed with
	// three partition values (GoldenTables.scala).
	rows := readTable(t, testdataTable(t, "delta-golden", "data-reader-timestamp_ntz-name-mode"))
	if len(rows) != 9 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if r["id"] == int32(0) && r["tsNtz"].(interface{ String() string }).String() != "2021-11-18 02:30:00.123456 +0000 UTC" {
			t.Fatalf("row 0: %v", r)
		}
	}
}

// TestTypeWideningReadsOlderFilesWide: files written before a column was
// widened read in the wider type (PROTOCOL.md "Type Widening").
func TestTypeWideningReadsOlderFilesWide(t *testing.T) {
	rows := readTable(t, testdataTable(t, "delta-golden", "type-widening"))
	var old map[string]any
	for _, r := range rows {
		if r["byte_long"] == int64(1) {
			old = r
		}
	}
	if old == nil {
		t.Fatalf("no row with byte_long 1: %v", rows)
	}
	want := map[string]any{
		"byte_long": int64(1), "int_long": int64(2), "float_double": float64(float32(3.4)),
		"byte_double": float64(5), "short_double": float64(6), "int_double": float64(7),
	}
	for k, v := range want {
		if !reflect.DeepEqual(old[k], v) {
			t.Errorf("%s: %#v, want %#v", k, old[k], v)
		}
	}
	for k, s := range map[string]string{
		"decimal_decimal_same_scale": "123.45", "decimal_decimal_greater_scale": "67.89000",
		"byte_decimal": "1.0", "short_decimal": "2.0", "int_decimal": "3.0", "long_decimal": "4.0",
		"date_timestamp_ntz": "2024-09-09 00:00:00 +0000 UTC",
	} {
		if got := old[k].(interface{ String() string }).String(); got != s {
			t.Errorf("%s: %s, want %s", k, got, s)
		}
	}
}

func readTable(t *testing.T, dir string) []map[string]any {
	t.Helper()
	store, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestAppendToFeatureTables appends the table's own rows to a copy of each
// feature table: the next version reads back as the old rows plus the new,
// the protocol is unchanged, and the feature's rules hold in the new files
// (physical names and field ids in the Parquet schema, stats and partition
// values by physical name, the current type of a widened column).
func TestAppendToFeatureTables(t *testing.T) {
	for _, name := range featureTables {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, testdataTable(t, "delta-golden", name))
			store, _ := NewLocalStorage(dir)
			tb, err := Open(t.Context(), store, WithSyncCheckpoints(), WithCheckpointInterval(1000))
			if err != nil {
				t.Fatal(err)
			}
			before, _ := tb.Snapshot(t.Context())
			old, err := ReadRows(t.Context(), store, before)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tb.Append(t.Context(), old, AppendOptions{}); err != nil {
				t.Fatalf("append: %v", err)
			}
			// A checkpoint of the new version, then a fresh reader.
			after, _ := tb.Snapshot(t.Context())
			if err := tb.Checkpoint(t.Context(), after); err != nil {
				t.Fatal(err)
			}
			tb.Close(t.Context())
			re, err := Open(t.Context(), store)
			if err != nil {
				t.Fatal(err)
			}
			after, _ = re.Snapshot(t.Context())
			if after.Version() != before.Version()+1 || after.CheckpointVersion() != after.Version() {
				t.Fatalf("version %d checkpoint %d, want %d", after.Version(), after.CheckpointVersion(), before.Version()+1)
			}
			if !reflect.DeepEqual(after.Protocol(), before.Protocol()) {
				t.Fatalf("protocol %+v, was %+v", after.Protocol(), before.Protocol())
			}
			if !reflect.DeepEqual(after.Metadata().Configuration, before.Metadata().Configuration) {
				t.Fatalf("configuration %v, was %v", after.Metadata().Configuration, before.Metadata().Configuration)
			}
			all, err := ReadRows(t.Context(), store, after)
			if err != nil {
				t.Fatal(err)
			}
			assertRows(t, all, append(append([]map[string]any{}, old...), old...))
			oldFiles := map[string]bool{}
			for _, f := range before.Files() {
				oldFiles[f.Path] = true
			}
			for _, f := range after.Files() {
				if !oldFiles[f.Path] {
					checkFeatureFile(t, dir, after, f)
				}
			}
		})
	}
}

// checkFeatureFile checks a file kpipe added to a feature table.
func checkFeatureFile(t *testing.T, dir string, s *Snapshot, f AddFile) {
	t.Helper()
	mode := mappingMode(s)
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(StorageKey(f.Path))))
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	root, err := buildPTree(pf.Metadata().Schema)
	if err != nil {
		t.Fatal(err)
	}
	parts := s.Metadata().PartitionColumns
	var data2 []*StructField
	for _, fl := range s.Schema().Fields {
		if !containsString(parts, fl.Name) {
			data2 = append(data2, fl)
		}
	}
	if len(root.children) != len(data2) {
		t.Fatalf("%s: %d columns, want %d", f.Path, len(root.children), len(data2))
	}
	for i, fl := range data2 {
		c := root.children[i]
		if c.name != physicalName(fl, mode) {
			t.Errorf("%s: column %d named %q, want %q", f.Path, i, c.name, physicalName(fl, mode))
		}
		if mode != "" && int(c.elem.FieldID) != fieldID(fl) {
			t.Errorf("%s: column %s field_id %d, want %d", f.Path, c.name, c.elem.FieldID, fieldID(fl))
		}
		// The current (widened) type is written.
		switch fl.Type {
		case TypeLong:
			if c.ptype != format.Int64 {
				t.Errorf("%s: long column %s written as %v", f.Path, fl.Name, c.ptype)
			}
		case TypeDouble:
			if c.ptype != format.Double {
				t.Errorf("%s: double column %s written as %v", f.Path, fl.Name, c.ptype)
			}
		case TypeTimestampNTZ:
			if c.ptype != format.Int64 {
				t.Errorf("%s: timestamp_ntz column %s written as %v", f.Path, fl.Name, c.ptype)
			}
		}
	}
	for k := range f.PartitionValues {
		if mode != "" && !strings.HasPrefix(k, "col-") {
			t.Errorf("%s: partition value keyed %q, not by physical name", f.Path, k)
		}
	}
	if mode != "" && len(parts) > 0 && !strings.HasPrefix(f.Path, "col-") {
		t.Errorf("%s: partition folder not by physical name", f.Path)
	}
	if mode != "" && strings.Contains(f.Stats, `"minValues"`) {
		for _, fl := range data2 {
			if strings.Contains(f.Stats, strconv.Quote(fl.Name)+":") && fl.Name != physicalName(fl, mode) {
				t.Errorf("%s: stats name logical column %s: %s", f.Path, fl.Name, f.Stats)
			}
		}
		if !strings.Contains(f.Stats, `"col-`) {
			t.Errorf("%s: stats without physical names: %s", f.Path, f.Stats)
		}
	}
}

func containsString(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

// TestColumnMappingSchemaEvolution: a column added by schema evolution to a
// mapped table gets the next id and a fresh physical name, the commit
// raises delta.columnMapping.maxColumnId, and names Spark forbids are
// allowed; without column mapping such a name is refused.
func TestColumnMappingSchemaEvolution(t *testing.T) {
	dir := copyDir(t, testdataTable(t, "delta-golden", "data-reader-timestamp_ntz-name-mode"))
	store, _ := NewLocalStorage(dir)
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := tb.Snapshot(t.Context())
	maxBefore, _ := strconv.Atoi(before.Metadata().Configuration[propMaxColumnID])
	row := map[string]any{"id": 100, "new col;x": "v", "nested": map[string]any{"a b": 1.5}}
	if _, err := tb.Append(t.Context(), []map[string]any{row}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	re, _ := Open(t.Context(), store)
	after, _ := re.Snapshot(t.Context())
	conf := after.Metadata().Configuration
	maxAfter, _ := strconv.Atoi(conf[propMaxColumnID])
	if maxAfter != maxBefore+3 {
		t.Fatalf("maxColumnId %d, want %d", maxAfter, maxBefore+3)
	}
	ids := map[int]bool{}
	names := map[string]bool{}
	walkFields(after.Schema(), "", func(p string, f *StructField) {
		pn, id, err := physicalOf(f, p)
		if err != nil {
			t.Fatal(err)
		}
		if ids[id] || names[pn] {
			t.Fatalf("%s: id %d or name %s not unique", p, id, pn)
		}
		ids[id], names[pn] = true, true
	})
	nf := after.Schema().Field("new col;x")
	if nf == nil || fieldID(nf) <= maxBefore || !strings.HasPrefix(physicalName(nf, "name"), "col-") {
		t.Fatalf("new column %+v", nf)
	}
	rows, err := ReadRows(t.Context(), store, after)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r["id"] == int32(100) {
			found = r["new col;x"] == "v" && reflect.DeepEqual(r["nested"], map[string]any{"a b": 1.5})
		} else if r["new col;x"] != nil {
			t.Fatalf("old row has the new column: %v", r)
		}
	}
	if !found {
		t.Fatalf("new row not read back: %v", rows)
	}

	// Without column mapping the names are refused, naming the fix.
	plain := copyDir(t, testdataTable(t, "delta-golden", "data-reader-timestamp_ntz"))
	ps, _ := NewLocalStorage(plain)
	ptb, err := Open(t.Context(), ps)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]any{{"id": 1, "new col": "v"}, {"id": 1, "s": map[string]any{"x=y": 1}}} {
		_, err = ptb.Append(t.Context(), []map[string]any{bad}, AppendOptions{SchemaEvolution: true})
		var se *SchemaError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "columnMapping") {
			t.Fatalf("append %v: got %v, want a SchemaError naming column mapping", bad, err)
		}
	}
}
