package delta

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kpipe/internal/s3test"
)

// commitTest commits acts after the table's latest snapshot, with a
// commitInfo of operation op at time ts.
func commitTest(t *testing.T, tb *Table, ts time.Time, op string, acts ...action) int64 {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	all := append([]action{{CommitInfo: map[string]any{"timestamp": ts.UnixMilli(), "operation": op, "txnId": newUUID()}}}, acts...)
	base, v, all, err := tb.commitActions(t.Context(), snap, all, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := base.clone()
	ns.history = nil
	ns.apply(v, all, ts)
	tb.setLatest(ns)
	return v
}

func removeOf(f AddFile, at time.Time) action {
	ms := at.UnixMilli()
	ext := true
	size := f.Size
	return action{Remove: &RemoveFile{Path: f.Path, DeletionTimestamp: &ms, DataChange: true,
		ExtendedFileMetadata: &ext, PartitionValues: f.PartitionValues, Size: &size}}
}

// setProperty commits a metaData action with the property k=v.
func setProperty(t *testing.T, tb *Table, k, v string) {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	md := snap.Metadata()
	md.Schema = snap.Schema()
	md.Configuration[k] = v
	commitTest(t, tb, time.Now(), "SET TBLPROPERTIES", action{MetaData: &md})
}

func keysOf(t *testing.T, store Storage) map[string]bool {
	t.Helper()
	list, err := store.List(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, fi := range list {
		out[fi.Key] = true
	}
	return out
}

// checkRetained reads every snapshot a reader may still ask for: the
// versions committed after cutoff and the one that was current at cutoff.
// Every file they reference must exist and read; it returns how many
// versions it read.
func checkRetained(t *testing.T, tb *Table, store Storage, cutoff time.Time) int {
	t.Helper()
	latest, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for v := latest.Version(); v >= 0; v-- {
		s, err := tb.SnapshotAt(t.Context(), v)
		if err != nil {
			t.Fatalf("version %d within retention: %v", v, err)
		}
		rows, err := ReadRows(t.Context(), store, s)
		if err != nil {
			t.Fatalf("version %d within retention: %v", v, err)
		}
		if _, n, _ := s.Totals(); int64(len(rows)) != n {
			t.Fatalf("version %d: %d rows, stats say %d", v, len(rows), n)
		}
		n++
		if !s.Timestamp().After(cutoff) {
			break
		}
	}
	return n
}

func TestVacuumDeletesOrphansAndExpiredRemovesOnly(t *testing.T) {
	dir := t.TempDir()
	store, err := NewLocalStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	real := time.Now()
	now := real.Add(8 * 24 * time.Hour) // what was written now is 8 days old
	tb := createSpecTable(t, store, WithSyncCheckpoints(), WithClock(func() time.Time { return now }))
	ts := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	for c := 1; c <= 4; c++ {
		if _, err := tb.Append(t.Context(), []map[string]any{specRow(c, 0, ts.Add(time.Duration(c)*24*time.Hour))}, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	files := snap.Files()
	// File 0 removed 8 days ago (expired), file 1 half a day ago (kept for
	// the snapshots before its removal, which are within the retention).
	expired, recent := files[0], files[1]
	commitTest(t, tb, real, "DELETE", removeOf(expired, real))
	commitTest(t, tb, now.Add(-12*time.Hour), "DELETE", removeOf(recent, now.Add(-12*time.Hour)))

	write := func(key string, mtime time.Time) {
		t.Helper()
		if err := store.Write(t.Context(), key, []byte("not referenced")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(key)), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	old, young := now.Add(-10*24*time.Hour), now.Add(-time.Hour)
	write("year=2026/month=1/day=11/part-00000-lost-race.c000.snappy.parquet", old)   // orphan of a lost race
	write("part-00000-crashed.c000.snappy.parquet", old)                              // orphan at the root
	write("year=2026/month=1/day=11/part-00001-in-flight.c000.snappy.parquet", young) // a writer's, not committed yet
	keepOld := []string{
		"_delta_log/00000000000000000999.json.tmp", "_delta_log/_junk", "_hidden/part-0.parquet",
		".hidden.parquet", "year=2026/_SUCCESS", "year=2026/month=1/.part-0.crc",
		"metadata/v1.metadata.json", "nested/_delta_log/00000000000000000000.json", "nested/part-0.parquet",
	}
	for _, k := range keepOld {
		write(k, old)
	}
	rowsBefore, err := ReadRows(t.Context(), store, snapOf(t, tb))
	if err != nil {
		t.Fatal(err)
	}
	before := keysOf(t, store)

	wantDeleted := []string{"part-00000-crashed.c000.snappy.parquet", StorageKey(expired.Path), "year=2026/month=1/day=11/part-00000-lost-race.c000.snappy.parquet"}
	slices.Sort(wantDeleted)
	gotKeys := func(r VacuumResult) []string {
		var out []string
		for _, f := range r.Files {
			out = append(out, f.Key)
		}
		return out
	}

	// A dry run finds them and deletes nothing.
	dry, err := tb.Vacuum(t.Context(), VacuumOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotKeys(dry), wantDeleted) || dry.Deleted != 0 || dry.Retention != DefaultDeletedFileRetention {
		t.Fatalf("dry run: files %v deleted %d retention %s; want %v, 0, 168h", gotKeys(dry), dry.Deleted, dry.Retention, wantDeleted)
	}
	for _, f := range dry.Files {
		if f.Removed != (f.Key == StorageKey(expired.Path)) {
			t.Fatalf("%s: Removed=%v", f.Key, f.Removed)
		}
	}
	if after := keysOf(t, store); len(after) != len(before) {
		t.Fatalf("the dry run changed the table's files: %d before, %d after", len(before), len(after))
	}
	version := snapOf(t, tb).Version()

	res, err := tb.Vacuum(t.Context(), VacuumOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotKeys(res), wantDeleted) || res.Deleted != len(wantDeleted) || res.Young != 1 {
		t.Fatalf("vacuum: files %v deleted %d young %d; want %v, %d, 1", gotKeys(res), res.Deleted, res.Young, wantDeleted, len(wantDeleted))
	}
	after := keysOf(t, store)
	for k := range before {
		if after[k] == slices.Contains(wantDeleted, k) {
			t.Fatalf("%s: exists after vacuum = %v", k, after[k])
		}
		if isLogKey(k) && !after[k] {
			t.Fatalf("%s under _delta_log deleted", k)
		}
	}
	rowsAfter, err := ReadRows(t.Context(), store, snapOf(t, tb))
	if err != nil {
		t.Fatal(err)
	}
	if len(rowsAfter) != len(rowsBefore) || len(rowsAfter) != 2 {
		t.Fatalf("after vacuum %d rows, before %d; want 2", len(rowsAfter), len(rowsBefore))
	}
	// The snapshot before the recent removal still reads: it is within
	// the retention.
	if n := checkRetained(t, tb, store, res.Cutoff); n < 3 {
		t.Fatalf("read %d versions within retention, want at least 3", n)
	}
	// The history shows it, with its metrics.
	hist, err := tb.History(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if hist[0].Operation != "VACUUM END" || hist[1].Operation != "VACUUM START" || hist[1].Version != version+1 {
		t.Fatalf("history: %+v", hist)
	}
	if m, _ := hist[1].Info["operationMetrics"].(map[string]any); m["numFilesToDelete"] != "3" {
		t.Fatalf("VACUUM START metrics %v", m)
	}
	if m, _ := hist[0].Info["operationMetrics"].(map[string]any); m["numDeletedFiles"] != "3" {
		t.Fatalf("VACUUM END metrics %v", m)
	}

	// Again: nothing left to delete, nothing committed.
	again, err := tb.Vacuum(t.Context(), VacuumOptions{})
	if err != nil || len(again.Files) != 0 || snapOf(t, tb).Version() != version+2 {
		t.Fatalf("second vacuum: %+v, %v", again, err)
	}
}

func snapOf(t *testing.T, tb *Table) *Snapshot {
	t.Helper()
	s, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVacuumRetentionBelowTheTablesIsRefused(t *testing.T) {
	store := newMemStorage()
	now := time.Now().Add(30 * 24 * time.Hour)
	tb := createSpecTable(t, store, WithClock(func() time.Time { return now }))
	if _, err := tb.Append(t.Context(), []map[string]any{specRow(1, 0, time.Now())}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	orphan := "part-orphan.parquet"
	if err := store.Write(t.Context(), orphan, []byte("x")); err != nil {
		t.Fatal(err)
	}
	ptr := func(d time.Duration) *time.Duration { return &d }

	_, err := tb.Vacuum(t.Context(), VacuumOptions{Retention: ptr(time.Hour)})
	if !errors.Is(err, ErrRetentionTooShort) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("1h below the default week: %v", err)
	}
	setProperty(t, tb, PropDeletedFileRetention, "interval 2 days")
	_, err = tb.Vacuum(t.Context(), VacuumOptions{Retention: ptr(24 * time.Hour), DryRun: true})
	if !errors.Is(err, ErrRetentionTooShort) {
		t.Fatalf("1 day below the table's 2: %v", err)
	}
	res, err := tb.Vacuum(t.Context(), VacuumOptions{DryRun: true})
	if err != nil || res.TableRetention != 48*time.Hour || res.Retention != 48*time.Hour {
		t.Fatalf("the table's retention: %+v, %v", res, err)
	}
	if _, err := store.Read(t.Context(), orphan); err != nil {
		t.Fatalf("a refused vacuum deleted: %v", err)
	}
	res, err = tb.Vacuum(t.Context(), VacuumOptions{Retention: ptr(0), Force: true})
	if err != nil || res.Deleted != 1 {
		t.Fatalf("forced: %+v, %v", res, err)
	}
	if _, err := store.Read(t.Context(), orphan); !errors.Is(err, ErrNotExist) {
		t.Fatalf("orphan after a forced vacuum: %v", err)
	}

	setProperty(t, tb, PropDeletedFileRetention, "interval 1 month")
	if _, err := tb.Vacuum(t.Context(), VacuumOptions{DryRun: true}); err == nil || !strings.Contains(err.Error(), PropDeletedFileRetention) {
		t.Fatalf("an unparsable property: %v", err)
	}
}

// vacuumProtocolCheck: vacuum checks the writer protocol of every table,
// and runs on a table with the feature itself, and on one with deletion
// vectors (whose files it keeps: TestVacuumKeepsDeletionVectorFiles).
func TestVacuumProtocolCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto Protocol
		ok    bool
	}{
		{"vacuumProtocolCheck", Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"vacuumProtocolCheck"}, WriterFeatures: []string{"vacuumProtocolCheck", "appendOnly"}}, true},
		{"unknown writer feature", Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: []string{"vacuumProtocolCheck", "someFutureFeature"}}, false},
		{"deletion vectors", Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"deletionVectors"}, WriterFeatures: []string{"deletionVectors"}}, true},
		{"writer version 8", Protocol{MinReaderVersion: 1, MinWriterVersion: 8}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStorage()
			now := time.Now().Add(30 * 24 * time.Hour)
			tb := createSpecTable(t, store, WithClock(func() time.Time { return now }))
			if err := store.Write(t.Context(), "part-orphan.parquet", []byte("x")); err != nil {
				t.Fatal(err)
			}
			p := tc.proto
			commitTest(t, tb, time.Now(), "UPGRADE PROTOCOL", action{Protocol: &p})
			res, err := tb.Vacuum(t.Context(), VacuumOptions{})
			if tc.ok {
				if err != nil || res.Deleted != 1 {
					t.Fatalf("%+v, %v", res, err)
				}
				return
			}
			if !errors.Is(err, ErrUnsupportedFeature) {
				t.Fatalf("want ErrUnsupportedFeature, got %v", err)
			}
			if _, err := store.Read(t.Context(), "part-orphan.parquet"); err != nil {
				t.Fatalf("refused, yet deleted: %v", err)
			}
		})
	}
}

func TestParseInterval(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"interval 1 week", 7 * 24 * time.Hour, false},
		{"interval 30 days", 30 * 24 * time.Hour, false},
		{"INTERVAL 2 WEEKS", 14 * 24 * time.Hour, false},
		{"2 weeks", 14 * 24 * time.Hour, false},
		{"interval 1 day 12 hours", 36 * time.Hour, false},
		{"interval '7' days", 7 * 24 * time.Hour, false},
		{"interval 90 minutes 30 seconds", 90*time.Minute + 30*time.Second, false},
		{"interval 0 seconds", 0, false},
		{"168h", 168 * time.Hour, false},
		{"interval 1 month", 0, true},
		{"interval 1 year", 0, true},
		{"interval", 0, true},
		{"", 0, true},
		{"interval -1 day", 0, true},
		{"interval 1.5 days", 0, true},
		{"interval 1 fortnight", 0, true},
		{"interval 9223372036854775807 weeks", 0, true},
		{"-5h", 0, true},
	} {
		got, err := ParseInterval(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseInterval(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{"interval 1 week", "interval 1 day 2 hours", "168h", "interval", "interval 1", "1 x", "interval 99999999999 weeks"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseInterval(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseInterval(%q) = %v", s, d)
		}
	})
}

func TestVacuumHidden(t *testing.T) {
	parts := []string{"year", "_p"}
	for key, want := range map[string]bool{
		"part-0.parquet":           false,
		"year=2026/part-0.parquet": false,
		"_p=1/part-0.parquet":      false,
		"_p=1/_SUCCESS":            true,
		"_q=1/part-0.parquet":      true,
		"_change_data/x.parquet":   true,
		".tmp/x":                   true,
		"year=2026/.x.crc":         true,
		"metadata/x.json":          true,
		"metadata.parquet":         false,
		"_delta_log/0.json":        true,
	} {
		if got := vacuumHidden(key, parts); got != want {
			t.Errorf("vacuumHidden(%q) = %v, want %v", key, got, want)
		}
	}
}

// On S3, where modification times cannot be set, an injected clock ages
// the table; the deletes go through the real server.
func TestVacuumS3(t *testing.T) {
	srv := s3test.Start(t)
	store := newS3Store(t, srv, "vacuum/table", nil)
	other := newS3Store(t, srv, "vacuum/table-2", nil) // shares the prefix's beginning
	now := time.Now().Add(8 * 24 * time.Hour)
	tb := createSpecTable(t, store, WithSyncCheckpoints(), WithClock(func() time.Time { return now }))
	for c := 1; c <= 3; c++ {
		if _, err := tb.Append(t.Context(), []map[string]any{specRow(c, 0, time.Date(2026, 1, c, 0, 0, 0, 0, time.UTC))}, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	snap := snapOf(t, tb)
	commitTest(t, tb, time.Now(), "DELETE", removeOf(snap.Files()[0], time.Now()))
	for _, k := range []string{"part-orphan.parquet", "year=2026/month=1/day=1/part-orphan.parquet"} {
		if err := store.Write(t.Context(), k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Write(t.Context(), "part-other.parquet", []byte("x")); err != nil {
		t.Fatal(err)
	}
	res, err := tb.Vacuum(t.Context(), VacuumOptions{})
	if err != nil || res.Deleted != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, err := other.Read(t.Context(), "part-other.parquet"); err != nil {
		t.Fatalf("another table's file: %v", err)
	}
	rows, err := ReadRows(t.Context(), store, snapOf(t, tb))
	if err != nil || len(rows) != 2 {
		t.Fatalf("%d rows after vacuum, %v", len(rows), err)
	}
	for k := range keysOf(t, store) {
		if strings.Contains(k, "orphan") {
			t.Fatalf("%s left", k)
		}
	}
}

// BenchmarkVacuum measures a vacuum of a local table holding n orphans:
// the dry run (listing and matching) and the run that deletes them.
func BenchmarkVacuum(b *testing.B) {
	for _, n := range []int{1000} {
		for _, dry := range []bool{true, false} {
			name := fmt.Sprintf("orphans=%d/dry_run=%v", n, dry)
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				store, err := NewLocalStorage(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now().Add(8 * 24 * time.Hour)
				tb := createSpecTable(b, store, WithClock(func() time.Time { return now }))
				for range b.N {
					b.StopTimer()
					for i := range n {
						if err := store.Write(b.Context(), fmt.Sprintf("year=2026/month=1/day=%d/part-%05d.parquet", i%28+1, i), []byte("x")); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					res, err := tb.Vacuum(b.Context(), VacuumOptions{DryRun: dry})
					if err != nil || len(res.Files) != n {
						b.Fatalf("%d files, %v", len(res.Files), err)
					}
				}
			})
		}
	}
}

// A table with deletion vectors stored in files: vacuum with no retention
// at all deletes none of the DV files the snapshot names (they are not
// data files of an add, and would look like orphans), and the table reads
// the same rows after it. Without keepDVFile every DV file goes.
func TestVacuumKeepsDeletionVectorFiles(t *testing.T) {
	store := copyRefTable(t, "delta-golden", "dv-partitioned-with-checkpoint")
	now := time.Now().Add(365 * 24 * time.Hour)
	tb, err := Open(t.Context(), store, WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	before, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	var dvFiles []string
	for _, f := range snap.Files() {
		d, err := f.DV()
		if err != nil {
			t.Fatal(err)
		}
		if d != nil && d.StorageType != "i" {
			k, err := dvFileKey(store, d)
			if err != nil {
				t.Fatal(err)
			}
			dvFiles = append(dvFiles, k)
		}
	}
	if len(dvFiles) == 0 {
		t.Fatal("the reference table has no DV files")
	}
	zero := time.Duration(0)
	res, err := tb.Vacuum(t.Context(), VacuumOptions{Retention: &zero, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted == 0 {
		t.Fatalf("nothing deleted: the table's older DV files and removed data files should go: %+v", res)
	}
	for _, k := range dvFiles {
		if _, err := store.Read(t.Context(), k); err != nil {
			t.Errorf("DV file %s the snapshot names was deleted: %v", k, err)
		}
	}
	snap, err = tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	after, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d rows after vacuum, %d before", len(after), len(before))
	}
}
