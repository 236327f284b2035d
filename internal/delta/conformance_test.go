package delta

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The conformance tests read the reference tables of shared/testdata,
// written by Spark (delta-io/delta's GoldenTables.scala) and by delta-rs.

func testdataTable(t *testing.T, set, name string) string {
	t.Helper()
	dir := filepath.Join(testdataDir, set, name)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference table %s/%s not available (%v): shared/testdata must be checked out beside the repo", set, name, err)
	}
	return dir
}

// unsupportedTables use features this package does not implement; reading
// or writing them must fail naming the feature.
var unsupportedTables = map[string]string{
	"delta-golden/deltalog-invalid-protocol-version": "minReaderVersion 99",
}

// brokenTables are not valid tables; opening them must fail with the error.
var brokenTables = map[string]error{
	"delta-golden/versions-not-contiguous":                                        ErrCorruptLog,
	"delta-golden/deltalog-state-reconstruction-without-metadata":                 ErrCorruptLog,
	"delta-golden/deltalog-state-reconstruction-without-protocol":                 ErrCorruptLog,
	"delta-golden/deltalog-state-reconstruction-from-checkpoint-missing-metadata": ErrCorruptLog,
	"delta-golden/deltalog-state-reconstruction-from-checkpoint-missing-protocol": ErrCorruptLog,
	"delta-golden/no-delta-log-folder":                                            ErrNotATable,
	"delta-golden/hive":                                                           ErrNotATable,
	"delta-golden/log-store-listFrom":                                             ErrNotATable,
	"delta-golden/log-store-read":                                                 ErrNotATable,
	"delta-golden/data-reader-date-types-America":                                 ErrNotATable,
	"delta-golden/data-reader-date-types-Asia":                                    ErrNotATable,
	"delta-golden/data-reader-date-types-Etc":                                     ErrNotATable,
	"delta-rs/checkpoints_tombstones":                                             ErrNotATable,
	"delta-golden/data-reader-absolute-paths-escaped-chars":                       ErrCorruptLog, // no metaData action
}

// logOnlyTables have a valid log whose data files were never written (the
// generators commit fake paths) or were vacuumed; only the log is checked.
var logOnlyTables = []string{
	"delta-golden/checkpoint",
	"delta-golden/delete-re-add-same-file-different-transactions",
	"delta-golden/log-replay-special-characters-b",
	"delta-golden/parquet-decimal-dictionaries-v1", // one data file could not be copied
	"delta-golden/canonicalized-paths-normal-a",
	"delta-golden/canonicalized-paths-normal-b",
	"delta-golden/canonicalized-paths-special-a",
	"delta-golden/canonicalized-paths-special-b",
	"delta-golden/corrupted-last-checkpoint",
	"delta-golden/deltalog-commit-info",
	"delta-golden/update-deleted-directory",
	"delta-rs/checkpoint_with_partitions",
	"delta-rs/latest_not_checkpointed",
	"delta-rs/with_checkpoint_no_last_checkpoint",
}

// bigTables are read only outside -short.
var bigTables = []string{
	"delta-golden/parquet-decimal-dictionaries",
	"delta-golden/parquet-decimal-dictionaries-v2",
	"delta-golden/parquet-decimal-type",
}

func TestConformanceAllTables(t *testing.T) {
	for _, set := range []string{"delta-golden", "delta-rs"} {
		dirs, err := os.ReadDir(filepath.Join(testdataDir, set))
		if err != nil {
			t.Skipf("reference tables not available (%v): shared/testdata must be checked out beside the repo", err)
		}
		for _, d := range dirs {
			name := set + "/" + d.Name()
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				if testing.Short() && slices.Contains(bigTables, name) {
					t.Skip("big table")
				}
				checkReferenceTable(t, set, d.Name(), name)
			})
		}
	}
}

func checkReferenceTable(t *testing.T, set, dir, name string) {
	store, err := NewLocalStorage(filepath.Join(testdataDir, set, dir))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Open(t.Context(), store)
	if want, ok := brokenTables[name]; ok {
		if !errors.Is(err, want) {
			t.Fatalf("open: got %v, want %v", err, want)
		}
		return
	}
	if feature, ok := unsupportedTables[name]; ok {
		if err == nil {
			snap, _ := tb.Snapshot(t.Context())
			_, err = ReadRows(t.Context(), store, snap)
			if err != nil {
				_, werr := tb.Append(t.Context(), nil, AppendOptions{Txns: []Txn{{AppID: "x", Version: 1}}})
				if !errors.Is(werr, ErrUnsupportedFeature) {
					t.Fatalf("append: got %v, want ErrUnsupportedFeature", werr)
				}
			}
		}
		if !errors.Is(err, ErrUnsupportedFeature) || !strings.Contains(err.Error(), feature) {
			t.Fatalf("got %v, want ErrUnsupportedFeature naming %s", err, feature)
		}
		return
	}
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	// The version is the newest in the log.
	l, err := tb.listLog(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	newest := l.maxCommit
	for v := range l.checkpoints {
		newest = max(newest, v)
	}
	if snap.Version() != newest {
		t.Fatalf("version %d, newest in log %d", snap.Version(), newest)
	}

	// The schema round-trips through our JSON encoding.
	var a, b any
	if err := json.Unmarshal([]byte(snap.Metadata().SchemaString), &a); err != nil && snap.Metadata().SchemaString != "" {
		t.Fatal(err)
	}
	if snap.Metadata().SchemaString != "" {
		if err := json.Unmarshal([]byte(snap.Schema().SchemaString()), &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalizeSchemaJSON(a), normalizeSchemaJSON(b)) {
			t.Fatalf("schema does not round-trip:\n%s\n%s", snap.Metadata().SchemaString, snap.Schema().SchemaString())
		}
	}

	// Replay from a checkpoint equals replay of the JSON log from 0.
	if _, ok := l.commits[0]; ok && snap.checkpointVersion >= 0 {
		full, err := tb.replayFrom(t.Context(), l, -1, snap.Version())
		if err == nil {
			assertSameState(t, snap, full)
		}
	}
	// Every version can be time-travelled to.
	if _, ok := l.commits[0]; ok {
		for v := int64(0); v <= snap.Version(); v++ {
			s, err := tb.SnapshotAt(t.Context(), v)
			if err != nil {
				t.Fatalf("snapshot at %d: %v", v, err)
			}
			if s.Version() != v {
				t.Fatalf("snapshot at %d has version %d", v, s.Version())
			}
		}
	}

	// Partition directories are named as this package would name them.
	parts := snap.Metadata().PartitionColumns
	if len(parts) > 0 && set == "delta-golden" {
		for _, f := range snap.Files() {
			if hasTimestampPartition(snap) {
				break // directory and partitionValues formats differ
			}
			key := StorageKey(f.Path)
			dirKey, _ := partitionDir(physicalOrLogical(snap), f.PartitionValues)
			if !strings.HasPrefix(key, dirKey) && !strings.HasPrefix(key, "/") {
				t.Errorf("file %s: partition directory, want prefix %s", key, dirKey)
			}
		}
	}
	if slices.Contains(logOnlyTables, name) {
		return
	}
	for _, f := range snap.Files() {
		rows, err := ReadFile(t.Context(), store, snap, f)
		if err != nil {
			t.Fatalf("read %s: %v", f.Path, err)
		}
		checkFileStats(t, snap, f, rows)
	}
	if check, ok := expectedContents[name]; ok {
		rows, err := ReadRows(t.Context(), store, snap)
		if err != nil {
			t.Fatal(err)
		}
		check(t, snap, rows)
	}
}

// normalizeSchemaJSON drops empty metadata objects, which writers emit or
// omit freely.
func normalizeSchemaJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if k == "metadata" {
				if m, ok := e.(map[string]any); ok && len(m) == 0 {
					continue
				}
			}
			out[k] = normalizeSchemaJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeSchemaJSON(e)
		}
		return out
	}
	return v
}

// checkFileStats compares what we read from a data file with the stats its
// writer recorded: row count, null counts, and min/max of top-level
// primitive columns.
func checkFileStats(t *testing.T, snap *Snapshot, f AddFile, rows []map[string]any) {
	t.Helper()
	if f.Stats == "" {
		return
	}
	var st struct {
		NumRecords *int64         `json:"numRecords"`
		MinValues  map[string]any `json:"minValues"`
		MaxValues  map[string]any `json:"maxValues"`
		NullCount  map[string]any `json:"nullCount"`
	}
	dec := json.NewDecoder(strings.NewReader(f.Stats))
	dec.UseNumber()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("%s: stats: %v", f.Path, err)
	}
	if dv := f.deletedCount(); dv > 0 {
		// numRecords counts the data file's rows, the DV's cardinality
		// those no longer in the table; other stats are wide bounds.
		if st.NumRecords == nil || *st.NumRecords-dv != int64(len(rows)) {
			t.Fatalf("%s: read %d rows, stats say %v less %d deleted", f.Path, len(rows), st.NumRecords, dv)
		}
		return
	}
	if st.NumRecords != nil && *st.NumRecords != int64(len(rows)) {
		t.Fatalf("%s: read %d rows, stats say %d", f.Path, len(rows), *st.NumRecords)
	}
	for _, fl := range snap.Schema().Fields {
		if _, ok := fl.Type.(PrimitiveType); !ok {
			continue
		}
		if _, widened := fl.Metadata["delta.typeChanges"]; widened {
			continue // older files' stats are of the older type
		}
		sname := physicalName(fl, mappingMode(snap))
		if n, ok := st.NullCount[sname].(json.Number); ok {
			var nulls int64
			for _, r := range rows {
				if r[fl.Name] == nil {
					nulls++
				}
			}
			if want, _ := n.Int64(); want != nulls {
				t.Errorf("%s: column %s: %d nulls, stats say %d", f.Path, fl.Name, nulls, want)
			}
		}
		for _, side := range []struct {
			stats map[string]any
			less  bool
		}{{st.MinValues, true}, {st.MaxValues, false}} {
			sv, ok := side.stats[sname]
			if !ok {
				continue
			}
			got := extreme(rows, fl.Name, side.less)
			if got == nil {
				continue
			}
			if !statMatches(fl.Type.(PrimitiveType), sv, got) {
				t.Errorf("%s: column %s: read extreme %v, stats say %v", f.Path, fl.Name, got, sv)
			}
		}
	}
}

func extreme(rows []map[string]any, col string, min bool) any {
	var best any
	for _, r := range rows {
		v := r[col]
		if v == nil {
			continue
		}
		if best == nil || (compareValues(v, best) < 0) == min && compareValues(v, best) != 0 {
			best = v
		}
	}
	return best
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case int8:
		return cmpOrdered(x, b.(int8))
	case int16:
		return cmpOrdered(x, b.(int16))
	case int32:
		return cmpOrdered(x, b.(int32))
	case int64:
		return cmpOrdered(x, b.(int64))
	case float32:
		return cmpOrdered(x, b.(float32))
	case float64:
		return cmpOrdered(x, b.(float64))
	case string:
		return strings.Compare(x, b.(string))
	case time.Time:
		return x.Compare(b.(time.Time))
	case bool:
		return cmpOrdered(btoi(x), btoi(b.(bool)))
	case Decimal:
		return x.Unscaled.Cmp(b.(Decimal).Unscaled)
	}
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmpOrdered[T int8 | int16 | int32 | int64 | float32 | float64 | int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func statMatches(t PrimitiveType, stat any, got any) bool {
	switch t {
	case TypeString:
		s, _ := stat.(string)
		g := got.(string)
		return s == g || (len(g) > len(s) && strings.HasPrefix(g, strings.TrimRight(s, "\U0010FFFF\uFFFD")))
	case TypeTimestamp, TypeTimestampNTZ:
		s, _ := stat.(string)
		g := got.(time.Time)
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000"} {
			if ts, err := time.Parse(layout, s); err == nil {
				return ts.Equal(g.Truncate(time.Millisecond)) || ts.Equal(g)
			}
		}
		return false
	case TypeDate:
		s, _ := stat.(string)
		return s == got.(time.Time).Format("2006-01-02")
	case TypeBoolean, TypeBinary:
		return true
	}
	n, ok := stat.(json.Number)
	if !ok {
		return true // NaN and friends
	}
	r, ok := new(big.Rat).SetString(n.String())
	if !ok {
		return false
	}
	switch g := got.(type) {
	case float32:
		f, _ := r.Float32()
		return f == g
	case float64:
		f, _ := r.Float64()
		return f == g
	}
	return r.RatString() == fmt.Sprint(got)
}

func hasTimestampPartition(s *Snapshot) bool {
	for _, pc := range s.Metadata().PartitionColumns {
		if f := s.Schema().Field(pc); f != nil && (f.Type == TypeTimestamp || f.Type == TypeTimestampNTZ) {
			return true
		}
	}
	return false
}

// physicalOrLogical is the partition columns as partition values name them.
func physicalOrLogical(s *Snapshot) []string {
	if p := physicalPartitionColumns(s); p != nil {
		return p
	}
	return s.Metadata().PartitionColumns
}
