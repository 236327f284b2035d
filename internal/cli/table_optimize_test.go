package cli

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
	"kpipe/internal/s3test"
)

// smallFilesTable writes commits of a few rows each over two days into a
// new SPEC table at loc (auto-compaction off: the test compacts).
func smallFilesTable(t *testing.T, loc string, commits int) {
	t.Helper()
	def, err := delta.LoadTableDef(filepath.Join(repoConfig(), "tables", "itel_cabinet_task_tracking.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := delta.OpenLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(t.Context(), store, def, delta.WithAutoCompact(delta.AutoCompact{Disable: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close(t.Context())
	rng := rand.New(rand.NewPCG(7, 8))
	statuses := []string{"assigned", "in_progress", "completed", "cancelled"}
	n := 0
	for c := range commits {
		var rows []map[string]any
		for range 10 {
			ts := time.Date(2026, 1, 10+c%2, 8, 0, n, 0, time.UTC)
			rows = append(rows, map[string]any{
				"event_id": fmt.Sprintf("e%04d", n), "event_type": "CUSTOM_TASK_UPDATED", "event_timestamp": ts, "processed_timestamp": ts,
				"task_id": int32(rng.IntN(200)), "project_id": "p-1", "task_status": statuses[rng.IntN(len(statuses))],
				"claimx_task_full": map[string]any{"n": float64(n)},
				"year":             int32(2026), "month": int32(1), "day": int32(ts.Day()),
			})
			n++
		}
		if _, err := tbl.Append(t.Context(), rows, delta.AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
}

const optimizeCheckSQL = `SELECT event_id, task_id, task_status, event_timestamp, claimx_task_full, year, month, day
FROM itel_cabinet_task_tracking ORDER BY event_id`

func queryCSV(t *testing.T, loc string) string {
	t.Helper()
	code, out, errOut := runCLI(t, nil, "query", "--table", loc, "--format", "csv", optimizeCheckSQL)
	if code != ExitOK {
		t.Fatalf("query: exit %d: %s", code, errOut)
	}
	return out
}

func TestTableOptimize(t *testing.T) {
	loc := filepath.Join(t.TempDir(), "itel_cabinet_task_tracking")
	smallFilesTable(t, loc, 24)
	before := queryCSV(t, loc)
	if n := strings.Count(before, "\n"); n != 241 {
		t.Fatalf("query before: %d lines, want 241", n)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--where", "task_id = 3"}, "may name only partition columns (year, month, day)"},
		{[]string{"--where", "nosuch = 3"}, `unknown column "nosuch"`},
		{[]string{"--where", "day = "}, "want a literal"},
		{[]string{"--zorder", "day"}, `Z-order column "day" is a partition column`},
		{[]string{"--zorder", "task_idx"}, `Z-order column "task_idx" is not in the table`},
		{[]string{"--target-size", "big"}, "--target-size"},
	} {
		code, out, errOut := runCLI(t, nil, append([]string{"table", "optimize", loc}, bad.args...)...)
		if code != ExitUsage || !strings.Contains(errOut, bad.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d saying %q", bad.args, code, errOut, out, ExitUsage, bad.want)
		}
	}
	if code, _, errOut := runCLI(t, nil, "table", "optimize", filepath.Join(t.TempDir(), "none")); code != ExitFailure || !strings.Contains(errOut, "no delta log") {
		t.Errorf("missing table: exit %d: %s", code, errOut)
	}

	code, out, errOut := runCLI(t, nil, "table", "optimize", loc, "--where", "day = 10", "--dry-run")
	if code != ExitOK || !strings.Contains(out, "dry run") || !strings.Contains(out, "would rewrite 12 files") || !strings.Contains(out, "in 1 partitions into about 1 files") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "table", "optimize", loc, "--where", "day = 10")
	if code != ExitOK || !strings.Contains(out, "rewrote 12 files") || !strings.Contains(out, "into 1 files") || !strings.Contains(out, "24 before, 13 after") {
		t.Fatalf("optimize --where: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := queryCSV(t, loc); got != before {
		t.Fatalf("DuckDB reads the table differently after OPTIMIZE:\n%s\nbefore:\n%s", got, before)
	}
	code, out, _ = runCLI(t, nil, "table", "optimize", loc, "--where", "day = 10")
	if code != ExitOK || !strings.Contains(out, "nothing to optimize") {
		t.Fatalf("optimize again: exit %d\n%s", code, out)
	}
	code, out, errOut = runCLI(t, nil, "table", "optimize", loc, "--zorder", "task_id,task_status", "--target-size", "4KiB")
	t.Logf("kpipe table optimize --zorder task_id,task_status --target-size 4KiB:\n%s", out)
	if code != ExitOK || !strings.Contains(out, "Z-order by task_id, task_status") {
		t.Fatalf("optimize --zorder: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := queryCSV(t, loc); got != before {
		t.Fatalf("DuckDB reads the table differently after Z-order:\n%s\nbefore:\n%s", got, before)
	}
	code, out, errOut = runCLI(t, nil, "table", "history", loc, "--limit", "2")
	if code != ExitOK {
		t.Fatalf("history: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "OPTIMIZE") || !strings.Contains(lines[2], "OPTIMIZE") ||
		!strings.Contains(lines[2], "numRemovedFiles=12") || !strings.Contains(lines[2], "numAddedFiles=1") || !strings.Contains(lines[2], "numAddedBytes=") {
		t.Fatalf("history:\n%s", out)
	}
}

// kpipe table optimize on a real S3 server: the table library reads the
// same rows before and after (kpipe query does not read S3 here yet).
func TestTableOptimizeOnS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	loc := srv.URL("delta/itel_cabinet_task_tracking")
	smallFilesTable(t, loc, 8)
	read := func() map[string]string {
		store := mustStore(t, loc)
		tb, err := delta.Open(t.Context(), store)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := tb.Snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		rows, err := delta.ReadRows(t.Context(), store, snap)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range rows {
			out[r["event_id"].(string)] = fmt.Sprint(r)
		}
		if len(out) != len(rows) {
			t.Fatalf("%d rows, %d distinct", len(rows), len(out))
		}
		return out
	}
	before := read()
	code, out, errOut := runCLI(t, nil, "table", "optimize", loc)
	if code != ExitOK || !strings.Contains(out, "rewrote 8 files") || !strings.Contains(out, "8 before, 2 after") {
		t.Fatalf("optimize: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := read(); !maps.Equal(got, before) {
		t.Fatalf("after OPTIMIZE on S3: %d rows, want the %d before, unchanged", len(got), len(before))
	}
}
