package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
)

func TestTableVacuum(t *testing.T) {
	loc := filepath.Join(t.TempDir(), "tbl")
	if _, errs, code := runTable(t, "table", "create", "--location", loc); code != ExitOK {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	tb, err := delta.Open(t.Context(), mustStore(t, loc))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	row := map[string]any{"event_id": "e1", "event_type": "CUSTOM_TASK_ASSIGNED", "event_timestamp": ts,
		"processed_timestamp": ts, "task_id": 32513, "project_id": "p", "task_status": "assigned",
		"year": 2026, "month": 1, "day": 10}
	if _, err := tb.Append(t.Context(), []map[string]any{row}, delta.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	put := func(rel string, age time.Duration) string {
		p := filepath.Join(loc, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("orphan"), 0o640); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldOrphan := put("year=2026/month=1/day=10/part-00000-lost.c000.snappy.parquet", 10*24*time.Hour)
	youngOrphan := put("year=2026/month=1/day=10/part-00001-inflight.c000.snappy.parquet", time.Hour)
	logJunk := put("_delta_log/old-junk.json", 100*24*time.Hour)
	present := func(p string) bool {
		_, err := os.Stat(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}

	out, errs, code := runTable(t, "table", "vacuum", loc, "--dry-run")
	if code != ExitOK || !strings.Contains(out, "part-00000-lost") || strings.Contains(out, "part-00001-inflight") ||
		!strings.Contains(out, "would delete 1 of 1 files, 6 bytes (0 removed past retention, 1 orphans); kept 1 referenced and 1 newer") {
		t.Fatalf("dry run: exit %d: %s%s", code, out, errs)
	}
	if !present(oldOrphan) {
		t.Fatal("the dry run deleted")
	}

	_, errs, code = runTable(t, "table", "vacuum", loc, "--retain", "1h")
	if code != ExitUsage || !strings.Contains(errs, "--force") || !present(oldOrphan) || !present(youngOrphan) {
		t.Fatalf("--retain 1h without --force: exit %d: %s", code, errs)
	}
	if _, errs, code = runTable(t, "table", "vacuum", loc, "--retain", "a while"); code != ExitUsage || !strings.Contains(errs, "--retain") {
		t.Fatalf("--retain a while: exit %d: %s", code, errs)
	}

	out, errs, code = runTable(t, "table", "vacuum", loc, "--retain", "interval 2 weeks")
	if code != ExitOK || !strings.Contains(out, "deleted 0 of 0 files") {
		t.Fatalf("--retain 2 weeks: exit %d: %s%s", code, out, errs)
	}
	out, errs, code = runTable(t, "table", "vacuum", loc)
	if code != ExitOK || !strings.Contains(out, "deleted 1 of 1 files, 6 bytes") {
		t.Fatalf("vacuum: exit %d: %s%s", code, out, errs)
	}
	if present(oldOrphan) || !present(youngOrphan) || !present(logJunk) {
		t.Fatalf("after vacuum: old orphan %v, young orphan %v, log file %v; want false, true, true", present(oldOrphan), present(youngOrphan), present(logJunk))
	}
	out, _, code = runTable(t, "table", "history", loc, "--limit", "2")
	if code != ExitOK || !strings.Contains(out, "VACUUM END") || !strings.Contains(out, "numDeletedFiles=1") {
		t.Fatalf("history:\n%s", out)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := delta.ReadRows(t.Context(), mustStore(t, loc), snap); err != nil || len(rows) != 1 {
		t.Fatalf("after vacuum: %d rows, %v", len(rows), err)
	}

	if _, errs, code := runTable(t, "table", "vacuum", filepath.Join(t.TempDir(), "none")); code != ExitFailure || !strings.Contains(errs, "no delta log") {
		t.Fatalf("vacuum of a missing table: exit %d: %s", code, errs)
	}
}
