package cli

import (
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
)

// queryTable writes a small itel_cabinet_task_tracking table and returns its
// folder.
func queryTable(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "itel_cabinet_task_tracking")
	def, err := delta.LoadTableDef(filepath.Join(repoConfig(), "tables", "itel_cabinet_task_tracking.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := delta.OpenLocation(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(t.Context(), store, def)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close(t.Context())
	row := func(id, status string, ts time.Time, completed any, full map[string]any) map[string]any {
		r := map[string]any{
			"event_id": id, "event_type": "CUSTOM_TASK_UPDATED", "event_timestamp": ts, "processed_timestamp": ts,
			"task_id": int32(32513), "assignment_id": int32(7), "project_id": "p-1", "task_status": status,
			"task_name": "Réparation 東京", "task_created_at": time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC),
			"task_completed_at": completed,
			"year":              int32(ts.Year()), "month": int32(ts.Month()), "day": int32(ts.Day()),
		}
		if full != nil {
			r["claimx_task_full"] = full
		}
		return r
	}
	rows := []map[string]any{
		row("e1", "assigned", time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), nil, map[string]any{"status": "assigned"}),
		row("e2", "completed", time.Date(2026, 1, 7, 10, 30, 0, 250000000, time.UTC), time.Date(2026, 1, 7, 10, 0, 0, 0, time.UTC), map[string]any{"status": "completed"}),
	}
	if _, err := tbl.Append(t.Context(), rows, delta.AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

const lifecycleSQL = `SELECT task_id, task_status, event_timestamp, task_name,
  DATEDIFF(task_completed_at, task_created_at) as days_to_complete, claimx_task_full
FROM itel_cabinet_task_tracking WHERE task_id = 32513 ORDER BY event_timestamp ASC`

func TestQueryFormats(t *testing.T) {
	dir := queryTable(t)
	t.Run("table", func(t *testing.T) {
		code, out, errOut := runCLI(t, nil, "query", "--table", dir, lifecycleSQL)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		want := strings.Join([]string{
			"task_id | task_status | event_timestamp           | task_name       | days_to_complete | claimx_task_full",
			"--------+-------------+---------------------------+-----------------+------------------+-----------------------",
			"  32513 | assigned    | 2026-01-05 09:00:00+00    | Réparation 東京 | NULL             | {\"status\":\"assigned\"}",
			"  32513 | completed   | 2026-01-07 10:30:00.25+00 | Réparation 東京 |                2 | {\"status\":\"completed\"}",
			"(2 rows)", ""}, "\n")
		if out != want {
			t.Fatalf("got:\n%s\nwant:\n%s", out, want)
		}
	})
	t.Run("csv", func(t *testing.T) {
		code, out, errOut := runCLI(t, nil, "query", "--table", dir, "--format", "csv", lifecycleSQL)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("output is not CSV: %v\n%s", err, out)
		}
		want := [][]string{
			{"task_id", "task_status", "event_timestamp", "task_name", "days_to_complete", "claimx_task_full"},
			{"32513", "assigned", "2026-01-05 09:00:00+00", "Réparation 東京", "", `{"status":"assigned"}`},
			{"32513", "completed", "2026-01-07 10:30:00.25+00", "Réparation 東京", "2", `{"status":"completed"}`},
		}
		if len(recs) != len(want) {
			t.Fatalf("got %d records, want %d:\n%s", len(recs), len(want), out)
		}
		for i := range want {
			if strings.Join(recs[i], "|") != strings.Join(want[i], "|") {
				t.Errorf("record %d: got %q, want %q", i, recs[i], want[i])
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := runCLI(t, nil, "query", "--table", dir, "--format", "json", lifecycleSQL)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got []map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not a JSON array: %v\n%s", err, out)
		}
		if len(got) != 2 || got[0]["event_timestamp"] != "2026-01-05T09:00:00Z" || got[0]["days_to_complete"] != nil ||
			got[1]["days_to_complete"] != float64(2) || got[1]["task_name"] != "Réparation 東京" ||
			got[1]["claimx_task_full"].(map[string]any)["status"] != "completed" {
			t.Fatalf("unexpected rows: %v", got)
		}
		// Keys keep the column order.
		if !strings.HasPrefix(strings.Split(out, "\n")[1], `{"task_id":32513,"task_status":"assigned","event_timestamp"`) {
			t.Errorf("first row not in column order: %s", out)
		}
	})
}

func TestQueryFile(t *testing.T) {
	dir := queryTable(t)
	file := filepath.Join("..", "..", "scripts", "delta_tables", "itel_cabinet_queries.sql")
	for _, format := range []string{"table", "csv", "json"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "query", "--table", dir, "--format", format, "--file", file)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, h := range []string{"-- Task lifecycle", "-- Status transitions", "-- Time in each status", "-- Stuck tasks", "-- Daily event counts", "-- Rows lacking enrichment"} {
				if !strings.Contains(out, h) {
					t.Errorf("output lacks header %q", h)
				}
			}
			if format == "table" && !strings.Contains(out, "days_to_complete") {
				t.Errorf("lifecycle result missing:\n%s", out)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	dir := queryTable(t)
	missing := filepath.Join(t.TempDir(), "nope")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no table", []string{"query", "--table", missing, "SELECT 1"}, ExitFailure, "no Delta table at " + missing + ": run `kpipe up` or `kpipe table create`"},
		{"bad format", []string{"query", "--table", dir, "--format", "xml", "SELECT 1"}, ExitUsage, `format "xml"`},
		{"no sql", []string{"query", "--table", dir}, ExitUsage, "no SQL"},
		{"file and sql", []string{"query", "--table", dir, "--file", "x.sql", "SELECT 1"}, ExitUsage, "either --file"},
		{"bad sql", []string{"query", "--table", dir, "SELEC 1"}, ExitFailure, "syntax error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, nil, tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("got exit %d %q, want %d containing %q", code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
}
