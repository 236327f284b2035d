package delta

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestConcurrentWriters(t *testing.T) {
	_, store := newSpecTable(t)
	testConcurrentWriters(t, store, 8, 50)
}

// testConcurrentWriters runs writers Tables on the table in store, each
// appending commits rows one commit at a time, and checks that every
// commit landed at its own version, once.
func testConcurrentWriters(t *testing.T, store Storage, writers, commits int) {
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer is its own Table, as separate processes would be.
			// No auto-compaction: its commits would add versions.
			tb, err := Open(t.Context(), store, WithAutoCompact(AutoCompact{Disable: true}))
			if err != nil {
				errs <- err
				return
			}
			defer tb.Close(t.Context())
			for c := 1; c <= commits; c++ {
				row := specRow(0, w*1000+c, ts)
				row["claimx_task_full"] = nil
				row["original_event"] = nil
				row["project_data"] = nil
				_, err := tb.Append(t.Context(), []map[string]any{row}, AppendOptions{
					Txns: []Txn{{AppID: fmt.Sprintf("w%d", w), Version: int64(c)}},
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d commit %d: %w", w, c, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := tb.Snapshot(t.Context())
	if snap.Version() != int64(writers*commits) {
		t.Fatalf("version %d, want %d", snap.Version(), writers*commits)
	}
	l := mustList(t, tb)
	for v := int64(0); v <= snap.Version(); v++ {
		if _, ok := l.commits[v]; !ok {
			t.Fatalf("commit %d missing", v)
		}
	}
	for w := 0; w < writers; w++ {
		if v, _ := snap.TxnVersion(fmt.Sprintf("w%d", w)); v != int64(commits) {
			t.Fatalf("writer %d txn %d, want %d", w, v, commits)
		}
	}
	// No file referenced twice across the whole log.
	seen := map[string]int64{}
	for v := int64(1); v <= snap.Version(); v++ {
		data, err := store.Read(t.Context(), commitKey(v))
		if err != nil {
			t.Fatal(err)
		}
		acts, err := parseLogEntry(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts {
			if a.Add != nil {
				if prev, dup := seen[a.Add.Path]; dup {
					t.Fatalf("file %s added at %d and %d", a.Add.Path, prev, v)
				}
				seen[a.Add.Path] = v
			}
		}
	}
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != writers*commits || len(seen) != writers*commits {
		t.Fatalf("%d rows, %d files; want %d", len(rows), len(seen), writers*commits)
	}
}

func TestConflicts(t *testing.T) {
	a, store := newSpecTable(t)
	b, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	row := specRow(1, 1, ts)
	// b's snapshot is at version 0; a commits the same appId first.
	if _, err := b.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(t.Context(), []map[string]any{row}, AppendOptions{SchemaEvolution: true, Txns: []Txn{{AppID: "p0", Version: 5}}}); err != nil {
		t.Fatal(err)
	}
	// A stale b sees a's metadata change (schema evolution) as a conflict.
	b.latest = b.latest.clone() // keep version 0
	plain := specRow(0, 2, ts)
	plain["claimx_task_full"], plain["original_event"], plain["project_data"] = nil, nil, nil
	err = b.commitRaced(t, []map[string]any{plain}, AppendOptions{Txns: []Txn{{AppID: "p1", Version: 1}}})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Version != 1 {
		t.Fatalf("got %v, want ConflictError at 1", err)
	}
	// The same appId with a version already recorded is refused.
	_, err = a.Append(t.Context(), []map[string]any{row}, AppendOptions{Txns: []Txn{{AppID: "p0", Version: 5}}})
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want ConflictError", err)
	}
}

// commitRaced appends without refreshing the cached snapshot first, as a
// writer that lost a race would.
func (t *Table) commitRaced(tt *testing.T, rows []map[string]any, opts AppendOptions) error {
	stale := t.cached()
	orig := t.store
	t.store = &noListStorage{Storage: orig}
	defer func() { t.store = orig }()
	t.latest = stale
	_, err := t.Append(tt.Context(), rows, opts)
	return err
}

// noListStorage hides new commits from List, so update() keeps a stale
// snapshot and the commit races.
type noListStorage struct{ Storage }

func (s *noListStorage) List(ctx context.Context, prefix, startAt string) ([]FileInfo, error) {
	if prefix == logDir && startAt != "" && startAt != logDir {
		return nil, nil
	}
	return s.Storage.List(ctx, prefix, startAt)
}

func TestCrashBeforeCommit(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 23, 59, 0, 0, time.UTC)
	if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, 1, ts)}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	before, _ := tb.Snapshot(t.Context())
	beforeRows, err := ReadRows(t.Context(), store, before)
	if err != nil {
		t.Fatal(err)
	}
	crash := errors.New("crash")
	_, err = tb.Append(t.Context(), []map[string]any{specRow(2, 2, ts), specRow(2, 3, ts.Add(2*time.Minute))}, AppendOptions{
		SchemaEvolution: true,
		Txns:            []Txn{{AppID: "p", Version: 9}},
		Hooks:           Hooks{AfterDataFiles: func() error { return crash }},
	})
	if !errors.Is(err, crash) {
		t.Fatalf("got %v", err)
	}
	// Data files exist on disk...
	n := 0
	_ = filepath.WalkDir(store.Location(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".parquet" && !contains(p, "_delta_log") {
			n++
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("%d data files on disk, want 3 (1 committed + 2 orphaned)", n)
	}
	// ...but a fresh reader sees exactly the table before.
	re, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := re.Snapshot(t.Context())
	afterRows, err := ReadRows(t.Context(), store, after)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version() != before.Version() || !TypesEqual(after.Schema(), before.Schema()) {
		t.Fatalf("version %d, want %d", after.Version(), before.Version())
	}
	if _, ok := after.TxnVersion("p"); ok {
		t.Fatal("txn of the crashed commit is visible")
	}
	assertRows(t, afterRows, beforeRows)
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestAppendToReferenceTables(t *testing.T) {
	cases := []struct {
		set, name string
		row       func(i int) map[string]any
		logOnly   bool
	}{
		{"delta-golden", "checkpoint", nil, true},
		{"delta-rs", "checkpoint_with_partitions", nil, true},
		{"delta-rs", "simple_table_with_checkpoint", nil, false},
		{"delta-golden", "data-reader-partition-values", nil, false},
		{"delta-golden", "data-reader-nested-struct", nil, false},
		{"delta-golden", "snapshot-data3", nil, false},
		{"delta-rs", "delta-0.8.0-partitioned", nil, false},
	}
	for _, c := range cases {
		t.Run(c.set+"/"+c.name, func(t *testing.T) {
			dir := copyDir(t, testdataTable(t, c.set, c.name))
			store, _ := NewLocalStorage(dir)
			tb, err := Open(t.Context(), store, WithSyncCheckpoints(), WithCheckpointInterval(2))
			if err != nil {
				t.Fatal(err)
			}
			before, _ := tb.Snapshot(t.Context())
			var beforeRows []map[string]any
			if !c.logOnly {
				if beforeRows, err = ReadRows(t.Context(), store, before); err != nil {
					t.Fatal(err)
				}
			}
			// Append rows shaped like existing ones (or synthetic ones).
			var added []map[string]any
			for i := 0; i < 3; i++ {
				var r map[string]any
				if len(beforeRows) > 0 {
					r = beforeRows[i%len(beforeRows)]
				} else {
					r = syntheticRow(before.Schema(), i)
				}
				added = append(added, r)
				if _, err := tb.Append(t.Context(), []map[string]any{r}, AppendOptions{Txns: []Txn{{AppID: "kpipe-test", Version: int64(i)}}}); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
			}
			if err := tb.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			re, err := Open(t.Context(), store)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := re.Snapshot(t.Context())
			if after.Version() != before.Version()+3 {
				t.Fatalf("version %d, want %d", after.Version(), before.Version()+3)
			}
			if v, _ := after.TxnVersion("kpipe-test"); v != 2 {
				t.Fatalf("txn %d", v)
			}
			if after.NumFiles() != before.NumFiles()+3 {
				t.Fatalf("%d files, want %d", after.NumFiles(), before.NumFiles()+3)
			}
			// New files read back as written; old ones unchanged.
			var newRows []map[string]any
			oldFiles := map[string]bool{}
			for _, f := range before.Files() {
				oldFiles[f.Path] = true
			}
			for _, f := range after.Files() {
				if oldFiles[f.Path] {
					continue
				}
				rows, err := ReadFile(t.Context(), store, after, f)
				if err != nil {
					t.Fatal(err)
				}
				checkFileStats(t, after, f, rows)
				newRows = append(newRows, rows...)
			}
			want := make([]map[string]any, len(added))
			for i, r := range added {
				if want[i], err = CoerceRow(after.Schema(), r); err != nil {
					t.Fatal(err)
				}
			}
			assertRows(t, newRows, want)
			if !c.logOnly {
				all, err := ReadRows(t.Context(), store, after)
				if err != nil {
					t.Fatal(err)
				}
				if len(all) != len(beforeRows)+3 {
					t.Fatalf("%d rows, want %d", len(all), len(beforeRows)+3)
				}
			}
		})
	}
}

// syntheticRow builds a row for a schema of primitive columns.
func syntheticRow(s *StructType, i int) map[string]any {
	r := map[string]any{}
	for _, f := range s.Fields {
		switch f.Type {
		case TypeString:
			r[f.Name] = fmt.Sprintf("s%d", i)
		case TypeLong, TypeInteger, TypeShort, TypeByte:
			r[f.Name] = i
		case TypeDouble, TypeFloat:
			r[f.Name] = float64(i) + 0.5
		case TypeBoolean:
			r[f.Name] = i%2 == 0
		case TypeDate, TypeTimestamp:
			r[f.Name] = time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC)
		}
	}
	return r
}
