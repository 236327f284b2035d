package dedupe_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"kpipe/internal/dedupe"
	"kpipe/internal/delta"
)

// rebuild fills a new Set from a Delta table: the key and event-time
// columns of the files that may hold rows within window before now (files
// FilesFrom keeps, pruned by stats), read with ReadColumns. This is how the
// delta_writer builds its state at start and after a rebalance.
func rebuild(ctx context.Context, store delta.Storage, snap *delta.Snapshot, keyCol, timeCol string, window time.Duration, now time.Time) (*dedupe.Set, error) {
	s := dedupe.New(window)
	err := refresh(ctx, s, store, snap, snap.Files(), keyCol, timeCol, now)
	return s, err
}

// refresh adds the keys of files to s; given delta.AddedFiles(prev, snap),
// it brings in what other writers committed since prev.
func refresh(ctx context.Context, s *dedupe.Set, store delta.Storage, snap *delta.Snapshot, files []delta.AddFile, keyCol, timeCol string, now time.Time) error {
	from := now.Add(-s.Window())
	files, err := delta.FilesFrom(snap, files, timeCol, from)
	if err != nil {
		return err
	}
	err = delta.ReadColumns(ctx, store, snap, files, []string{keyCol, timeCol}, func(b *delta.ColumnBatch) error {
		for r := range b.Len() {
			k := b.Bytes(0, r)
			at, ok := b.Time(1, r)
			if k == nil || !ok || at.Before(from) {
				continue
			}
			s.AddBytes(k, at)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuilding dedupe state from %s: %w", store.Location(), err)
	}
	s.Expire(now)
	return nil
}

// eventsDef has SPEC's top-level primitive columns, partitioned by day.
const eventsDef = `
name: events
columns:
  - {name: event_id, type: string, nullable: false}
  - {name: event_type, type: string, nullable: false}
  - {name: event_timestamp, type: timestamp, nullable: false}
  - {name: processed_timestamp, type: timestamp, nullable: false}
  - {name: task_id, type: integer, nullable: false}
  - {name: project_id, type: string, nullable: false}
  - {name: task_status, type: string, nullable: false}
  - {name: year, type: integer}
  - {name: month, type: integer}
  - {name: day, type: integer}
partition_columns: [year, month, day]
`

func newEventsTable(tb testing.TB) (*delta.Table, delta.Storage) {
	tb.Helper()
	def, err := delta.ParseTableDef([]byte(eventsDef))
	if err != nil {
		tb.Fatal(err)
	}
	store, err := delta.NewLocalStorage(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	t, err := delta.Create(tb.Context(), store, def, delta.WithCheckpointInterval(1<<30))
	if err != nil {
		tb.Fatal(err)
	}
	return t, store
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// eventID is the i-th key in the simulator's form: 32 hex digits.
func eventID(buf *[32]byte, i int) []byte {
	a := splitmix64(uint64(i))
	b := splitmix64(a ^ 0x5bd1e995)
	const hex = "0123456789abcdef"
	for j := range 16 {
		buf[j] = hex[(a>>(60-4*j))&0xF]
		buf[16+j] = hex[(b>>(60-4*j))&0xF]
	}
	return buf[:]
}

// appendEvents writes rows [from, from+n) whose event times run from start,
// step apart, in commits of at most perCommit rows.
func appendEvents(tb testing.TB, t *delta.Table, from, n, perCommit int, start time.Time, step time.Duration) {
	tb.Helper()
	var buf [32]byte
	for lo := from; lo < from+n; lo += perCommit {
		hi := min(lo+perCommit, from+n)
		rows := make([]map[string]any, 0, hi-lo)
		for i := lo; i < hi; i++ {
			ts := start.Add(time.Duration(i) * step)
			rows = append(rows, map[string]any{
				"event_id":            string(eventID(&buf, i)),
				"event_type":          "CUSTOM_TASK_ASSIGNED",
				"event_timestamp":     ts,
				"processed_timestamp": ts.Add(time.Second),
				"task_id":             int32(32513),
				"project_id":          fmt.Sprint(12345 + i%1000),
				"task_status":         "assigned",
				"year":                ts.Year(),
				"month":               int(ts.Month()),
				"day":                 ts.Day(),
			})
		}
		if _, err := t.Append(tb.Context(), rows, delta.AppendOptions{}); err != nil {
			tb.Fatal(err)
		}
	}
}

var t0 = time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)

func TestRebuildFromTable(t *testing.T) {
	tb, store := newEventsTable(t)
	// 10 days, one event a minute: 14,400 rows.
	appendEvents(t, tb, 0, 14400, 2000, t0, time.Minute)
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(10 * 24 * time.Hour)
	window := 72 * time.Hour
	s, err := rebuild(t.Context(), store, snap, "event_id", "event_timestamp", window, now)
	if err != nil {
		t.Fatal(err)
	}
	var buf [32]byte
	// Rows within the window are seen, rows well before it are not (keys
	// up to one bucket width, window/8, older are kept too).
	for i := range 14400 {
		at := t0.Add(time.Duration(i) * time.Minute)
		seen := s.Seen(string(eventID(&buf, i)))
		switch {
		case !at.Before(now.Add(-window)) && !seen:
			t.Fatalf("row %d at %v in the window not seen", i, at)
		case at.Before(now.Add(-window-window/8)) && seen:
			t.Fatalf("row %d at %v long before the window seen", i, at)
		}
	}
	// Another writer commits; the refresh reads only its files.
	other, err := delta.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, other, 14400, 100, 100, t0, time.Minute)
	snap2, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	added := delta.AddedFiles(snap, snap2)
	if len(added) != 1 {
		t.Fatalf("AddedFiles: %d files, want 1", len(added))
	}
	if s.Seen(string(eventID(&buf, 14450))) {
		t.Fatal("key seen before the refresh")
	}
	if err := refresh(t.Context(), s, store, snap2, added, "event_id", "event_timestamp", now); err != nil {
		t.Fatal(err)
	}
	if !s.Seen(string(eventID(&buf, 14450))) {
		t.Fatal("key committed by another writer not seen after the refresh")
	}
}

// Example_rebuild shows the writer's use: rebuild from the table, then
// drop the events already written.
func Example_rebuild() {
	ctx := context.Background()
	store, _ := delta.OpenLocation("table") // an existing table
	table, err := delta.Open(ctx, store)
	if err != nil {
		return
	}
	snap, _ := table.Snapshot(ctx)
	s, err := rebuild(ctx, store, snap, "event_id", "event_timestamp", 168*time.Hour, time.Now())
	if err != nil {
		return
	}
	if !s.Seen("9f2c…") {
		s.Add("9f2c…", time.Now())
		// write the event
	}
}
