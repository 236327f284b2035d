package delta

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

func TestSplitGroups(t *testing.T) {
	for _, c := range []struct {
		name    string
		sizes   []int
		minRows int
		procs   int
		want    [][]int // per group, the rows of each file
	}{
		{"small", []int{7}, 4, 4, [][]int{{7}}},
		{"two files", []int{8}, 4, 4, [][]int{{4, 4}}},
		{"capped by procs", []int{100}, 4, 3, [][]int{{33, 33, 34}}},
		{"never split", []int{100}, -1, 4, [][]int{{100}}},
		{"one core", []int{100}, 4, 1, [][]int{{100}}},
		{"as many groups as procs", []int{100, 100}, 4, 2, [][]int{{100}, {100}}},
		{"budget per group", []int{100, 9, 3}, 4, 7, [][]int{{50, 50}, {4, 5}, {3}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var groups []*partGroup
			next := 0
			for _, n := range c.sizes {
				g := &partGroup{}
				for range n {
					g.rows = append(g.rows, next)
					next++
				}
				groups = append(groups, g)
			}
			files := splitGroups(groups, c.minRows, c.procs)
			got := make([][]int, len(groups))
			row := 0
			for _, f := range files {
				gi := slices.Index(groups, f.g)
				if f.first != (len(got[gi]) == 0) {
					t.Fatalf("file of group %d: first %v", gi, f.first)
				}
				got[gi] = append(got[gi], len(f.rows))
				for _, r := range f.rows {
					if r != row {
						t.Fatalf("got row %d, want %d: files are not consecutive runs in order", r, row)
					}
					row++
				}
			}
			if !slices.EqualFunc(got, c.want, slices.Equal) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestAppendSplitsPartition writes one partition's rows as several files
// in one commit and checks each file's rows and stats.
func TestAppendSplitsPartition(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	tb, store := newSpecTable(t)
	midnight := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	var rows []map[string]any
	for i := range 35 {
		rows = append(rows, specRow(3, i, midnight.Add(time.Duration(i)*time.Second)))
	}
	res, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true, MinRowsPerFile: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 3 || res.Rows != 35 {
		t.Fatalf("got %+v, want 3 files of 35 rows", res)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var firsts []int64
	seen := 0
	for _, f := range snap.Files() {
		got, err := ReadFile(t.Context(), store, snap, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < 10 {
			t.Fatalf("%s: %d rows, want at least 10", f.Path, len(got))
		}
		var st struct {
			NumRecords int
			MinValues  map[string]any
			MaxValues  map[string]any
		}
		if err := json.Unmarshal([]byte(f.Stats), &st); err != nil {
			t.Fatal(err)
		}
		first := int64(got[0]["assignment_id"].(int32))
		for j, r := range got {
			if id := int64(r["assignment_id"].(int32)); id != first+int64(j) {
				t.Fatalf("%s: row %d has assignment_id %d, want %d", f.Path, j, id, first+int64(j))
			}
		}
		last := first + int64(len(got)) - 1
		if st.NumRecords != len(got) || st.MinValues["assignment_id"] != float64(first) || st.MaxValues["assignment_id"] != float64(last) {
			t.Fatalf("%s: stats %+v for assignment_id %d..%d", f.Path, st, first, last)
		}
		if f.PartitionValues["day"] != "10" {
			t.Fatalf("%s: partition values %v", f.Path, f.PartitionValues)
		}
		firsts = append(firsts, first)
		seen += len(got)
	}
	slices.Sort(firsts)
	if seen != 35 || !slices.Equal(firsts, []int64{1000, 1011, 1023}) {
		t.Fatalf("got %d rows, files starting at %v", seen, firsts)
	}

	// With as many partitions as cores, every partition is one file.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	rows = rows[:0]
	for i := range 40 {
		rows = append(rows, specRow(3, i, midnight.Add(time.Duration(i-20)*time.Hour)))
	}
	if res, err = tb.Append(t.Context(), rows, AppendOptions{MinRowsPerFile: 5}); err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 {
		t.Fatalf("got %d files, want 2", res.Files)
	}
}

// TestGroupRowsParallel checks that grouping in parallel chunks gives the
// groups, rows and first error of grouping serially.
func TestGroupRowsParallel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	schema := &StructType{Fields: []*StructField{
		{Name: "d", Type: TypeInteger, Nullable: true},
		{Name: "s", Type: TypeString, Nullable: true},
	}}
	parts := []string{"d", "s"}
	n := 4 * groupChunkRows
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i] = map[string]any{"d": (i / 1000) % 5, "s": []any{"a", "b", nil}[i%3]}
		if i%7 == 0 {
			delete(rows[i], "s")
		}
	}
	rows[n-1]["d"] = 99 // a group first seen in the last chunk
	got, present, err := groupRows(schema, parts, mapRows(rows), nil)
	if err != nil {
		t.Fatal(err)
	}
	fields := []*StructField{schema.Fields[0], schema.Fields[1]}
	want, err := groupChunk(fields, parts, mapRows(rows), 0, n, make([]uint8, n), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d groups, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].key != want[i].key || !slices.Equal(got[i].rows, want[i].rows) || got[i].values["d"] != want[i].values["d"] || got[i].values["s"] != want[i].values["s"] {
			t.Fatalf("group %d: got %v %v, want %v %v", i, got[i].values, len(got[i].rows), want[i].values, len(want[i].rows))
		}
	}
	for i, r := range rows {
		if int(present[i]) != len(r) {
			t.Fatalf("row %d: present %d, want %d", i, present[i], len(r))
		}
	}

	rows[n-5]["d"] = 1.5
	rows[2*groupChunkRows+3]["d"] = "x"
	_, _, err = groupRows(schema, parts, mapRows(rows), nil)
	var se *SchemaError
	if !errors.As(err, &se) || se.Row != 2*groupChunkRows+3 {
		t.Fatalf("got %v, want a *SchemaError of row %d", err, 2*groupChunkRows+3)
	}
}

func TestLocalStorageCreatesFolders(t *testing.T) {
	store, err := NewLocalStorage(filepath.Join(t.TempDir(), "t"))
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"y=1/m=2/a.parquet", "y=1/m=2/b.parquet", "y=1/m=3/c.parquet"}
	for _, k := range keys {
		if err := store.writeUnsynced(t.Context(), k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.syncDirs(t.Context(), keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if b, err := store.Read(t.Context(), k); err != nil || string(b) != k {
			t.Fatalf("%s: got %q, %v", k, b, err)
		}
	}
}
