package query

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kpipe/internal/delta"
)

// testdataDir holds the reference tables (shared/testdata beside the repo).
const testdataDir = "../../../shared/testdata"

// copyTable copies a reference table into a temporary folder.
func copyTable(t *testing.T, set, name string) string {
	t.Helper()
	src := filepath.Join(testdataDir, set, name)
	if _, err := os.Stat(src); err != nil {
		t.Skipf("reference table %s/%s not available (%v)", set, name, err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func queryInts(t *testing.T, dir, stmt string) []int64 {
	t.Helper()
	db, err := Open(t.Context(), dir, WithView("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(t.Context(), stmt)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// DuckDB never returns rows deletion vectors removed, reads tables with v2
// checkpoints, and reads a table kpipe appended to as the old rows plus
// the new, protocol unchanged.
func TestDeletionVectorsQueryAndAppend(t *testing.T) {
	none := func(int64) bool { return false }
	cases := []struct {
		name, col string
		n         int64
		deleted   func(int64) bool
	}{
		{"log-replay-dv-key-cases", "id", 50, func(i int64) bool { return i == 0 || i == 7 || i == 14 }},
		{"dv-partitioned-with-checkpoint", "col1", 50, func(i int64) bool { return i%2 == 0 && i <= 28 }},
		// v2 checkpoints: UUID-named, sidecars.
		{"v2-checkpoint-json", "id", 10, none},
		{"v2-checkpoint-parquet", "id", 10, none},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTable(t, "delta-golden", c.name)
			var want []int64
			for i := int64(0); i < c.n; i++ {
				if !c.deleted(i) {
					want = append(want, i)
				}
			}
			stmt := "SELECT CAST(" + c.col + " AS BIGINT) FROM t ORDER BY 1"
			if got := queryInts(t, dir, stmt); !slices.Equal(got, want) {
				t.Fatalf("query: %v\nwant %v", got, want)
			}
			store, err := delta.NewLocalStorage(dir)
			if err != nil {
				t.Fatal(err)
			}
			tb, err := delta.Open(t.Context(), store, delta.WithSyncCheckpoints())
			if err != nil {
				t.Fatal(err)
			}
			before, _ := tb.Snapshot(t.Context())
			row := map[string]any{c.col: int64(1000)}
			if c.col == "col1" {
				row = map[string]any{"col1": int32(1000), "part": int32(0), "col2": "new"}
			}
			if _, err := tb.Append(t.Context(), []map[string]any{row}, delta.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			after, _ := tb.Snapshot(t.Context())
			if after.Version() != before.Version()+1 || !slices.Equal(after.Protocol().ReaderFeatures, before.Protocol().ReaderFeatures) ||
				!slices.Equal(after.Protocol().WriterFeatures, before.Protocol().WriterFeatures) {
				t.Fatalf("append: version %d -> %d, protocol %+v -> %+v", before.Version(), after.Version(), before.Protocol(), after.Protocol())
			}
			want = append(want, 1000)
			if got := queryInts(t, dir, stmt); !slices.Equal(got, want) {
				t.Fatalf("query after append: %v\nwant %v", got, want)
			}
			rows, err := delta.ReadRows(t.Context(), store, after)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(want) {
				t.Fatalf("table library: %d rows after append, want %d", len(rows), len(want))
			}
		})
	}
}

// A table kpipe cannot read is refused by query, naming the feature.
func TestQueryRefusesUnreadable(t *testing.T) {
	for name, feature := range map[string]string{
		"deltalog-invalid-protocol-version": "minReaderVersion 99",
	} {
		dir := copyTable(t, "delta-golden", name)
		_, err := Open(t.Context(), dir)
		if !errors.Is(err, delta.ErrUnsupportedFeature) || !strings.Contains(err.Error(), feature) {
			t.Fatalf("%s: %v, want ErrUnsupportedFeature naming %s", name, err, feature)
		}
	}
}

// Top-level variant columns read as JSON text; nested ones keep their
// Parquet struct of binaries.
func TestVariantColumns(t *testing.T) {
	dir := copyTable(t, "delta-golden", "spark-variant-checkpoint")
	db, err := Open(t.Context(), dir, WithView("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, nested int64
	var v string
	if err := db.conn.QueryRowContext(t.Context(), `SELECT count(*), max(v) FILTER (WHERE id = 5),
		count(*) FILTER (WHERE struct_of_variants.v."value" IS NOT NULL) FROM t`).Scan(&n, &v, &nested); err != nil {
		t.Fatal(err)
	}
	if n != 102 || v != `{"key":5}` || nested != 102 {
		t.Fatalf("count %d, v %q, nested %d; want 102, {\"key\":5}, 102", n, v, nested)
	}
}

// A checkpoint that holds an add of a file and removes of the same path
// (other DV ids), as Databricks 12.2 wrote one, with the JSON commits
// before it gone: DuckDB counts the live rows (the bug read 0).
func TestCheckpointAddAndRemovesOfOnePath(t *testing.T) {
	dir := copyTable(t, "delta-golden", "log-replay-dv-key-cases")
	store, err := delta.NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := delta.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	if len(snap.Tombstones()) != 3 || snap.NumFiles() != 1 {
		t.Fatalf("%d files, %d tombstones; want 1 file and the removes of it with no DV, dv1, dv2", snap.NumFiles(), len(snap.Tombstones()))
	}
	if err := tb.Checkpoint(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	for v := int64(0); v < snap.Version(); v++ {
		if err := os.Remove(filepath.Join(dir, "_delta_log", fmt.Sprintf("%020d.json", v))); err != nil {
			t.Fatal(err)
		}
	}
	if got := queryInts(t, dir, "SELECT count(*) FROM t"); !slices.Equal(got, []int64{47}) {
		t.Fatalf("count(*) = %v, want 47", got)
	}
}
