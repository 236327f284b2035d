package delta

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// agedLogTable is a local table of commits 1..n-1 (one row each) whose
// log files are dated: version v at t0 + v*6h, t0 a midnight UTC 34 days
// before now, so with the default 30 days' retention the cutoff is
// t0 + 4 days and the newest expired commit is 16.
func agedLogTable(t *testing.T, n int) (*Table, *LocalStorage, string, time.Time) {
	t.Helper()
	dir := t.TempDir()
	store, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-34 * 24 * time.Hour).Truncate(24 * time.Hour)
	now := t0.Add(34*24*time.Hour + time.Hour)
	tb := createSpecTable(t, store, WithSyncCheckpoints(), WithCheckpointInterval(10), WithClock(func() time.Time { return now }))
	for c := 1; c < n; c++ {
		if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, c, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC))}, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	ageLog(t, dir, n-1, t0)
	return tb, store, dir, t0
}

// ageLog dates the log files of versions 0..last: t0 + v*6h.
func ageLog(t *testing.T, dir string, last int, t0 time.Time) {
	t.Helper()
	for v := int64(0); v <= int64(last); v++ {
		ts := t0.Add(time.Duration(v) * 6 * time.Hour)
		for _, k := range []string{commitKey(v), checkpointKey(v)} {
			err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(k)), ts, ts)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
	}
}

func exists(t *testing.T, store Storage, key string) bool {
	t.Helper()
	_, err := store.Read(t.Context(), key)
	if err != nil && !errors.Is(err, ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// After the checkpoint at 40, the cleanup keeps the checkpoint at 10 (the
// newest at or before the newest expired commit, 16) and everything after
// it: every version from the cutoff on still reads; those before the
// checkpoint are gone.
func TestLogCleanupKeepsEveryVersionWithinRetention(t *testing.T) {
	tb, store, _, t0 := agedLogTable(t, 40)
	// Files the cleanup deletes with their version, and one it leaves.
	for _, k := range []string{"_delta_log/00000000000000000003.crc", "_delta_log/00000000000000000002.00000000000000000004.compacted.json", "_delta_log/_sidecars/x.parquet"} {
		if err := store.Write(t.Context(), k, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if !exists(t, store, commitKey(0)) || !exists(t, store, checkpointKey(30)) {
		t.Fatal("setup: log incomplete before the checkpoint at 40")
	}
	if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, 40, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC))}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	if !exists(t, store, checkpointKey(40)) {
		t.Fatal("no checkpoint at 40")
	}
	for v := int64(0); v <= 40; v++ {
		if got, want := exists(t, store, commitKey(v)), v >= 10; got != want {
			t.Fatalf("commit %d exists = %v, want %v", v, got, want)
		}
	}
	for _, k := range []string{"_delta_log/00000000000000000003.crc", "_delta_log/00000000000000000002.00000000000000000004.compacted.json"} {
		if exists(t, store, k) {
			t.Fatalf("%s kept", k)
		}
	}
	for _, k := range []string{"_delta_log/_sidecars/x.parquet", lastCheckpointKey, checkpointKey(10), checkpointKey(20)} {
		if !exists(t, store, k) {
			t.Fatalf("%s deleted", k)
		}
	}
	// Every version within retention reads, in a new process too.
	fresh, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	cutoff := t0.Add(4 * 24 * time.Hour)
	for v := int64(10); v <= 40; v++ {
		s, err := fresh.SnapshotAt(t.Context(), v)
		if err != nil {
			t.Fatalf("version %d (log time %s, cutoff %s): %v", v, t0.Add(time.Duration(v)*6*time.Hour), cutoff, err)
		}
		if s.NumFiles() != int(v) {
			t.Fatalf("version %d: %d files, want %d", v, s.NumFiles(), v)
		}
		if v%10 != 6 {
			continue
		}
		rows, err := ReadRows(t.Context(), store, s)
		if err != nil || len(rows) != int(v) {
			t.Fatalf("version %d: %d rows, %v; want %d", v, len(rows), err, v)
		}
	}
	if _, err := fresh.SnapshotAt(t.Context(), 9); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("version 9, before the kept checkpoint: %v", err)
	}
	// Removing the hint leaves the listing, which finds the same.
	if err := store.Delete(t.Context(), lastCheckpointKey); err != nil {
		t.Fatal(err)
	}
	listed, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{10, 16, 17, 39, 40} {
		s, err := listed.SnapshotAt(t.Context(), v)
		if err != nil || s.NumFiles() != int(v) {
			t.Fatalf("version %d from the listing: %v", v, err)
		}
	}
}

// The cleanup never relies on a checkpoint it cannot read: with the only
// candidate torn, nothing is deleted.
func TestLogCleanupSkipsATornCheckpoint(t *testing.T) {
	tb, store, dir, t0 := agedLogTable(t, 40)
	tear(t, store, checkpointKey(10))
	ageLog(t, dir, 39, t0)
	if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, 40, time.Now())}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	if !exists(t, store, checkpointKey(40)) {
		t.Fatal("no checkpoint at 40")
	}
	if !exists(t, store, commitKey(0)) {
		t.Fatal("commit 0 deleted though the only checkpoint to keep is torn")
	}
}

func TestLogCleanupOff(t *testing.T) {
	tb, store, dir, t0 := agedLogTable(t, 39)
	setProperty(t, tb, PropExpiredLogCleanup, "false")
	ageLog(t, dir, 39, t0)
	res, err := tb.CleanupExpiredLogs(t.Context())
	if err != nil || len(res.Deleted) != 0 || !exists(t, store, commitKey(0)) {
		t.Fatalf("%s=false: %+v, %v", PropExpiredLogCleanup, res, err)
	}
	setProperty(t, tb, PropExpiredLogCleanup, "true")
	res, err = tb.CleanupExpiredLogs(t.Context())
	if err != nil || res.Checkpoint != 10 || len(res.Deleted) != 10 || exists(t, store, commitKey(0)) {
		t.Fatalf("%s=true: %+v, %v", PropExpiredLogCleanup, res, err)
	}
}

// tear truncates an object to half its size, as a crash in a non-atomic
// write would leave it.
func tear(t *testing.T, store Storage, key string) {
	t.Helper()
	data, err := store.Read(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Write(t.Context(), key, data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
}
