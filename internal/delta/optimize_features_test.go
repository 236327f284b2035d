package delta

import (
	"errors"
	"testing"
	"time"
)

// OPTIMIZE on other engines' feature tables: column mapping (the new files
// use physical names and field ids, as checkFeatureFile checks), type
// widening (older files rewritten in the current type), deletion vectors
// (deleted rows stay deleted; the remove names the file with its DV), and
// in-commit timestamps (commitInfo first, stamped). Rows read the same
// after; the protocol and configuration are unchanged.
func TestOptimizeFeatureTables(t *testing.T) {
	names := append([]string{"dv-partitioned-with-checkpoint", "log-replay-dv-key-cases"}, featureTables...)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, testdataTable(t, "delta-golden", name))
			store, _ := NewLocalStorage(dir)
			tb, err := Open(t.Context(), store, WithAutoCompact(AutoCompact{Disable: true}))
			if err != nil {
				t.Fatal(err)
			}
			defer tb.Close(t.Context())
			before, _ := tb.Snapshot(t.Context())
			old, err := ReadRows(t.Context(), store, before)
			if err != nil {
				t.Fatal(err)
			}
			// Two appends so that every partition has small files to merge.
			for range 2 {
				if _, err := tb.Append(t.Context(), old, AppendOptions{}); err != nil {
					t.Fatalf("append: %v", err)
				}
			}
			mid, _ := tb.Snapshot(t.Context())
			want, err := ReadRows(t.Context(), store, mid)
			if err != nil {
				t.Fatal(err)
			}
			res, err := tb.Optimize(t.Context(), OptimizeOptions{MinFiles: 2})
			if err != nil {
				t.Fatalf("optimize: %v", err)
			}
			if res.Version < 0 || res.RemovedFiles == 0 {
				t.Fatalf("nothing optimized: %+v", res)
			}
			after, _ := tb.Snapshot(t.Context())
			got, err := ReadRows(t.Context(), store, after)
			if err != nil {
				t.Fatal(err)
			}
			assertRows(t, got, want)
			if after.Protocol().MinWriterVersion != before.Protocol().MinWriterVersion {
				t.Fatalf("protocol changed: %+v, was %+v", after.Protocol(), before.Protocol())
			}
			midFiles := map[string]bool{}
			for _, f := range mid.Files() {
				midFiles[f.Path] = true
			}
			for _, f := range after.Files() {
				if !midFiles[f.Path] {
					checkFeatureFile(t, dir, after, f)
					if len(f.DeletionVector) > 0 {
						t.Errorf("rewritten file %s has a deletion vector", f.Path)
					}
				}
			}
		})
	}
}

// A table with row tracking is refused by OPTIMIZE (its rewritten rows
// would get new row ids), and auto-compaction leaves it alone; one with
// in-commit timestamps gets an OPTIMIZE commit whose commitInfo comes
// first with an inCommitTimestamp after the previous commit's.
func TestOptimizeRowTrackingAndICT(t *testing.T) {
	for _, tc := range []struct {
		prop    string
		refused bool
	}{
		{propEnableRowTracking, true},
		{propEnableICT, false},
	} {
		t.Run(tc.prop, func(t *testing.T) {
			store := newMemStorage()
			def, err := LoadTableDef(specTableDef)
			if err != nil {
				t.Fatal(err)
			}
			def.Properties[tc.prop] = "true"
			tb, err := Create(t.Context(), store, def, WithAutoCompact(AutoCompact{Disable: true}))
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
			for i := range 4 {
				if _, err := tb.Append(t.Context(), []map[string]any{optRow("e"+itoa(i), 10, i, "open", ts)}, AppendOptions{SchemaEvolution: true}); err != nil {
					t.Fatal(err)
				}
			}
			prev, _ := tb.Snapshot(t.Context())
			res, err := tb.Optimize(t.Context(), OptimizeOptions{})
			if tc.refused {
				if !errors.Is(err, ErrUnsupportedFeature) {
					t.Fatalf("want ErrUnsupportedFeature, got %+v, %v", res, err)
				}
				return
			}
			if err != nil || res.Version != prev.Version()+1 {
				t.Fatalf("%+v, %v", res, err)
			}
			acts := lastCommit(t, tb, store)
			ci := acts[0].CommitInfo
			if ci == nil || ci["operation"] != "OPTIMIZE" {
				t.Fatalf("first action %+v, want OPTIMIZE's commitInfo", acts[0])
			}
			ict, ok := metaInt(ci["inCommitTimestamp"])
			if !ok || ict <= prev.Timestamp().UnixMilli() {
				t.Fatalf("inCommitTimestamp %v, previous commit %d", ci["inCommitTimestamp"], prev.Timestamp().UnixMilli())
			}
		})
	}
}
