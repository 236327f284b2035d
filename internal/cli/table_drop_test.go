package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
)

// TestTableCreateDropExisting: --drop-existing says what it deletes, and
// off a terminal (the test's streams) refuses without --yes, leaving the
// rows; with --yes it drops them.
func TestTableCreateDropExisting(t *testing.T) {
	loc := filepath.Join(t.TempDir(), "tbl")
	if _, errs, code := runTable(t, "table", "create", "--location", loc); code != ExitOK {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	tb, err := delta.Open(t.Context(), mustStore(t, loc))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var rows []map[string]any
	for _, id := range []string{"e1", "e2", "e3"} {
		rows = append(rows, map[string]any{"event_id": id, "event_type": "CUSTOM_TASK_ASSIGNED", "event_timestamp": ts,
			"processed_timestamp": ts, "task_id": 32513, "project_id": "p", "task_status": "assigned", "year": 2026, "month": 1, "day": 10})
	}
	if _, err := tb.Append(t.Context(), rows, delta.AppendOptions{}); err != nil {
		t.Fatal(err)
	}

	out, errs, code := runTable(t, "table", "create", "--location", loc, "--drop-existing", "--dry-run")
	if code != ExitOK || !strings.Contains(out, "holds 3 rows in 1 data files") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runTable(t, "table", "create", "--location", loc, "--drop-existing")
	if code != ExitUsage || !strings.Contains(out, "holds 3 rows in 1 data files") || !strings.Contains(errs, "add --yes") {
		t.Fatalf("without --yes: exit %d\n%s%s", code, out, errs)
	}
	if snap, err := mustOpen(t, loc).Snapshot(t.Context()); err != nil || snap.Version() != 1 {
		t.Fatalf("the refused drop changed the table: %v", err)
	}
	out, errs, code = runTable(t, "table", "create", "--location", loc, "--drop-existing", "--yes")
	if code != ExitOK || !strings.Contains(out, "dropping") || !strings.Contains(out, "version 0") {
		t.Fatalf("--yes: exit %d\n%s%s", code, out, errs)
	}
}

// TestTableDescribeDefaultPath: describe and history without PATH read
// the table where kpipe up writes it, as query does.
func TestTableDescribeDefaultPath(t *testing.T) {
	def, err := filepath.Abs("../../config/tables/itel_cabinet_task_tracking.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if _, errs, code := runTable(t, "table", "create", "--def", def); code != ExitOK {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	for _, cmd := range []string{"describe", "history"} {
		out, errs, code := runTable(t, "table", cmd)
		if code != ExitOK || !strings.Contains(out, "0") {
			t.Errorf("table %s: exit %d\n%s%s", cmd, code, out, errs)
		}
	}
	out, _, _ := runTable(t, "table", "describe")
	if !strings.Contains(out, "itel_cabinet_task_tracking") {
		t.Errorf("describe of the default path:\n%s", out)
	}
}

func mustOpen(t *testing.T, loc string) *delta.Table {
	t.Helper()
	tb, err := delta.Open(t.Context(), mustStore(t, loc))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}
