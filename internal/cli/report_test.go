package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
	"kpipe/internal/pipeline"
)

// lifecycleTable writes an itel_cabinet_task_tracking table holding rows (each:
// event_id, assignment_id, status, event time) and returns its folder.
func lifecycleTable(t *testing.T, rows ...[4]any) string {
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
	if len(rows) == 0 {
		return dir
	}
	var out []map[string]any
	for _, r := range rows {
		ts := r[3].(time.Time)
		out = append(out, map[string]any{
			"event_id": r[0], "event_type": "CUSTOM_TASK_STATUS_CHANGED", "event_timestamp": ts, "processed_timestamp": ts,
			"task_id": int32(32513), "assignment_id": r[1], "project_id": "p-1", "task_status": r[2],
			"year": int32(ts.Year()), "month": int32(ts.Month()), "day": int32(ts.Day()),
		})
	}
	if _, err := tbl.Append(t.Context(), out, delta.AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Assignment 1 completes in 30h; 2 has been assigned for 4 days at the
// report time: stuck, and past the SLA. e2 is replayed.
func reportFixture(t *testing.T) string {
	d := func(day, hour int) time.Time { return time.Date(2026, 1, day, hour, 0, 0, 0, time.UTC) }
	return lifecycleTable(t,
		[4]any{"e1", int32(1), "assigned", d(5, 0)},
		[4]any{"e2", int32(1), "in_progress", d(5, 6)},
		[4]any{"e2", int32(1), "in_progress", d(5, 6)},
		[4]any{"e3", int32(1), "completed", d(6, 6)},
		[4]any{"e4", int32(2), "assigned", d(6, 0)},
	)
}

const reportAsOf = "2026-01-10T00:00:00Z"

func TestReportFormats(t *testing.T) {
	dir := reportFixture(t)
	t.Run("table", func(t *testing.T) {
		code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--as-of", reportAsOf)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			"Task 32513 lifecycles as of 2026-01-10T00:00:00Z (table version 1)\n",
			"events 4, duplicates ignored 1, after as-of ignored 0\n",
			"assignments tracked        2\n",
			"time to complete, median   1d6h\n",
			"completed within SLA (3d)  1 of 1 (100.0%)\n",
			"open past SLA (3d)         1\n",
			"2              p-1         assigned  2026-01-06T00:00:00Z  4d\n",
			"assigned=6h in_progress=1d\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in:\n%s", want, out)
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--as-of", reportAsOf, "--format", "csv")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) != 3 || recs[0][0] != "assignment_id" || recs[1][0] != "1" {
			t.Fatalf("default section, want assignments (%v):\n%s", err, out)
		}
		code, out, errOut = runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--as-of", reportAsOf, "--format", "csv", "--section", "summary", "--sla", "24h", "--stuck-after", "100h")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		recs, err = csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) != 2 {
			t.Fatalf("summary section (%v):\n%s", err, out)
		}
		got := map[string]string{}
		for i, k := range recs[0] {
			got[k] = recs[1][i]
		}
		// 30h > 24h SLA; 4 days assigned is under 100h.
		for k, v := range map[string]string{"assignments": "2", "completed_within_sla": "0", "sla_share": "0",
			"open_past_sla": "1", "stuck": "0", "median_time_to_complete_seconds": "108000", "sla_seconds": "86400"} {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--as-of", reportAsOf, "--format", "json")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got struct {
			Summary struct {
				Stuck    int64   `json:"stuck"`
				SLAShare float64 `json:"sla_share"`
			} `json:"summary"`
			Stuck []struct {
				AssignmentID int64   `json:"assignment_id"`
				ForSeconds   float64 `json:"for_seconds"`
			} `json:"stuck"`
			Assignments []struct {
				Transitions     int64   `json:"transitions"`
				TimeOpenSeconds float64 `json:"time_open_seconds"`
			} `json:"assignments"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got.Summary.Stuck != 1 || got.Summary.SLAShare != 1 || len(got.Stuck) != 1 || got.Stuck[0].AssignmentID != 2 ||
			got.Stuck[0].ForSeconds != 4*86400 || len(got.Assignments) != 2 || got.Assignments[0].Transitions != 2 ||
			got.Assignments[0].TimeOpenSeconds != 30*3600 {
			t.Errorf("got:\n%s", out)
		}
	})
}

// TestReportHTMLAndAsOf: --format html writes one page with its charts and
// timelines; without --as-of the report of old data is as of its newest
// event, and says so.
func TestReportHTMLAndAsOf(t *testing.T) {
	dir := reportFixture(t)
	code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--format", "html")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"<!DOCTYPE html>", `id="funnel-chart"`, `<tr id="a-2" data-assignment="2">`, `"timelines":true`,
		"as of <b>2026-01-06T06:00:00Z</b> — newest event: the newest event is"} {
		if !strings.Contains(out, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	code, out, _ = runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir)
	if code != ExitOK || !strings.Contains(out, "lifecycles as of 2026-01-06T06:00:00Z") || !strings.Contains(out, "as of: newest event (") {
		t.Errorf("default as-of: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--as-of", "now", "--format", "csv", "--section", "timeline")
	if code != ExitOK || !strings.HasPrefix(out, "assignment_id,seq,event_timestamp,status,changed,lasted_seconds\n1,1,2026-01-05T00:00:00Z,assigned,true,21600\n") {
		t.Errorf("timeline section: exit %d\n%s", code, out)
	}
}

func TestReportEmptyTable(t *testing.T) {
	dir := lifecycleTable(t)
	for _, f := range []string{"table", "csv", "json", "html"} {
		code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--format", f)
		if code != ExitOK {
			t.Fatalf("%s: exit %d: %s", f, code, errOut)
		}
		if f == "table" && !strings.Contains(out, "no assignments of task 32513") {
			t.Errorf("table:\n%s", out)
		}
	}
}

func TestReportUsage(t *testing.T) {
	dir := reportFixture(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad as-of", []string{"--as-of", "yesterday"}, ExitUsage, "--as-of"},
		{"bad format", []string{"--format", "xml"}, ExitUsage, "--format"},
		{"section without csv", []string{"--section", "stuck"}, ExitUsage, "only --format csv"},
		{"unknown section", []string{"--format", "csv", "--section", "nope"}, ExitUsage, "want one of summary, current_status"},
		{"zero sla", []string{"--sla", "0s"}, ExitUsage, "--sla"},
		{"negative limit", []string{"--limit", "-1"}, ExitUsage, "--limit"},
		{"zero task id", []string{"--task-id", "0"}, ExitUsage, "--task-id 0"},
		{"argument", []string{"extra"}, ExitUsage, "unknown command"},
		{"no table", []string{"--table", filepath.Join(t.TempDir(), "none")}, ExitFailure, "no Delta table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--config-dir", repoConfig(), "report"}, tc.args...)
			if tc.name != "no table" {
				args = append(args, "--table", dir)
			}
			code, _, errOut := runCLI(t, nil, args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

// TestReportTaskIDFromConfig: without --task-id the report takes the task
// template the plugins' triggers are keyed by, and asks for --task-id when
// they name several or none, or cannot be read.
func TestReportTaskIDFromConfig(t *testing.T) {
	dir := reportFixture(t)
	cfgDir := t.TempDir()
	copyTree(t, repoConfig(), cfgDir)
	pf := filepath.Join(cfgDir, "plugins", "itel_cabinet_api", "config.yaml")
	data, err := os.ReadFile(pf)
	if err != nil {
		t.Fatal(err)
	}
	two := strings.Replace(string(data), "  triggers:\n", "  triggers:\n    40001:\n      on_completed:\n        publish_to_topic: done\n", 1)
	if err := os.WriteFile(pf, []byte(two), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"several templates", []string{"--config-dir", cfgDir, "report"}, ExitUsage, "several task templates (32513, 40001): pass --task-id"},
		{"no configuration", []string{"--config-dir", filepath.Join(t.TempDir(), "none"), "report"}, ExitUsage, "pass --task-id"},
		{"task id given", []string{"--config-dir", filepath.Join(t.TempDir(), "none"), "report", "--task-id", "32513"}, ExitOK, ""},
		{"task id of the other template", []string{"--config-dir", cfgDir, "report", "--task-id", "40001"}, ExitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append(tc.args, "--table", dir, "--as-of", reportAsOf)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
			if code == ExitOK && !strings.Contains(out, "Task "+tc.args[len(tc.args)-1]+" lifecycles") {
				t.Errorf("report of the wrong template:\n%s", out)
			}
		})
	}
}

// The deliveries the writer's dedupe dropped never became rows: the report
// sums what the commits recorded of them.
func TestReportDroppedDuplicates(t *testing.T) {
	ts := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	dir := lifecycleTable(t, [4]any{"e1", int32(1), "assigned", ts})
	store, err := delta.OpenLocation(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	for i, dropped := range []int{3, 4} {
		row := map[string]any{
			"event_id": fmt.Sprintf("e%d", i+2), "event_type": "CUSTOM_TASK_STATUS_CHANGED", "event_timestamp": ts, "processed_timestamp": ts,
			"task_id": int32(32513), "assignment_id": int32(1), "project_id": "p-1", "task_status": "in_progress",
			"year": int32(2026), "month": int32(1), "day": int32(5),
		}
		if _, err := tbl.Append(t.Context(), []map[string]any{row}, delta.AppendOptions{CommitInfo: map[string]any{pipeline.CommitInfoDuplicatesDropped: dropped}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = tbl.Close(t.Context())

	code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--as-of", reportAsOf)
	if code != ExitOK || !strings.Contains(out, "deliveries dropped as duplicates by the writer 7\n") {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	code, out, errOut = runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", dir, "--as-of", reportAsOf, "--format", "json")
	if code != ExitOK || !strings.Contains(out, `"dropped_duplicates": 7`) {
		t.Fatalf("json: exit %d: %s\n%s", code, errOut, out)
	}
	code, out, _ = runCLI(t, nil, "--config-dir", repoConfig(), "report", "--table", reportFixture(t), "--as-of", reportAsOf)
	if code != ExitOK || !strings.Contains(out, "deliveries dropped as duplicates by the writer 0\n") {
		t.Fatalf("no dedupe commits: exit %d\n%s", code, out)
	}
}
