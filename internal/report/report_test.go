package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
	"kpipe/internal/query"
)

var tableDefPath = filepath.Join("..", "..", "config", "tables", "itel_cabinet_task_tracking.yaml")

// jan is a time on a January 2026 day, UTC.
func jan(day, hour int) time.Time { return time.Date(2026, 1, day, hour, 0, 0, 0, time.UTC) }

const h = time.Hour

// ev is one row of the table, as the worker writes it.
type ev struct {
	id         string
	task       int32
	assignment any // int32 or nil
	project    string
	status     string
	ts         time.Time
	processed  time.Duration // after ts; default 1s
	created    any           // time.Time or nil
}

// templateID is the task template the rows are of, unless an ev names
// another.
const templateID = 32513

func (e ev) row() map[string]any {
	task := e.task
	if task == 0 {
		task = templateID
	}
	p := e.processed
	if p == 0 {
		p = time.Second
	}
	typ := "CUSTOM_TASK_STATUS_CHANGED"
	if e.status == "assigned" {
		typ = "CUSTOM_TASK_ASSIGNED"
	}
	return map[string]any{
		"event_id": e.id, "event_type": typ, "event_timestamp": e.ts, "processed_timestamp": e.ts.Add(p),
		"task_id": task, "assignment_id": e.assignment, "project_id": e.project, "task_status": e.status,
		"task_name": "iTel Cabinet Repair Form", "task_created_at": e.created,
		"tracking_version": "1.0", "source": "claimx_itel_plugin",
		"year": int32(e.ts.Year()), "month": int32(e.ts.Month()), "day": int32(e.ts.Day()),
	}
}

// newTable creates the tracking table and appends each batch as one commit.
func newTable(t *testing.T, batches ...[]ev) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "itel_cabinet_task_tracking")
	def, err := delta.LoadTableDef(tableDefPath)
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
	for _, b := range batches {
		rows := make([]map[string]any, len(b))
		for i, e := range b {
			rows[i] = e.row()
		}
		if _, err := tbl.Append(t.Context(), rows, delta.AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// asOf is the report time of the lifecycles below.
var asOf = jan(20, 0)

// lifecycles are seven assignments of task 32513 with known timings (see
// each), rows of another task and without assignment, and an event after
// asOf.
var lifecycles = []ev{
	// 1001: assigned 6h → in_progress 21h (an update at 09:00 keeps the
	// status) → completed. Created 08:00, closed Jan 6 12:00: open 28h.
	{id: "a1-1", assignment: int32(1001), project: "p-1", status: "assigned", ts: jan(5, 9), created: jan(5, 8)},
	{id: "a1-2", assignment: int32(1001), project: "p-1", status: "in_progress", ts: jan(5, 15), created: jan(5, 8)},
	{id: "a1-3", assignment: int32(1001), project: "p-1", status: "in_progress", ts: jan(6, 9), created: jan(5, 8)},
	{id: "a1-4", assignment: int32(1001), project: "p-1", status: "completed", ts: jan(6, 12), created: jan(5, 8)},
	// 1002: assigned 10h → reassigned 24h → in_progress 62h → completed
	// Jan 10 00:00. Open 96h: past the 72h SLA.
	{id: "a2-1", assignment: int32(1002), project: "p-1", status: "assigned", ts: jan(6, 0), created: jan(6, 0)},
	{id: "a2-2", assignment: int32(1002), project: "p-1", status: "reassigned", ts: jan(6, 10), created: jan(6, 0)},
	{id: "a2-3", assignment: int32(1002), project: "p-1", status: "in_progress", ts: jan(7, 10), created: jan(6, 0)},
	{id: "a2-4", assignment: int32(1002), project: "p-1", status: "completed", ts: jan(10, 0), created: jan(6, 0)},
	// 1003: created Jan 6 20:00, first seen Jan 7: assigned 2h →
	// in_progress 10h → completed 24h → reopened 1h → in_progress 7h →
	// completed Jan 8 20:00. Open 48h.
	{id: "a3-1", assignment: int32(1003), project: "p-2", status: "assigned", ts: jan(7, 0), created: jan(6, 20)},
	{id: "a3-2", assignment: int32(1003), project: "p-2", status: "in_progress", ts: jan(7, 2), created: jan(6, 20)},
	{id: "a3-3", assignment: int32(1003), project: "p-2", status: "completed", ts: jan(7, 12), created: jan(6, 20)},
	{id: "a3-4", assignment: int32(1003), project: "p-2", status: "reopened", ts: jan(8, 12), created: jan(6, 20)},
	{id: "a3-5", assignment: int32(1003), project: "p-2", status: "in_progress", ts: jan(8, 13), created: jan(6, 20)},
	{id: "a3-6", assignment: int32(1003), project: "p-2", status: "completed", ts: jan(8, 20), created: jan(6, 20)},
	// 1004: assigned 6h → cancelled Jan 9 06:00. Two rows share 06:00: the
	// update processed first (a4-3, "assigned") comes before the
	// cancellation (a4-2), though event_id would order them the other way.
	{id: "a4-1", assignment: int32(1004), project: "p-2", status: "assigned", ts: jan(9, 0), created: jan(9, 0)},
	{id: "a4-2", assignment: int32(1004), project: "p-2", status: "cancelled", ts: jan(9, 6), processed: 5 * time.Second, created: jan(9, 0)},
	{id: "a4-3", assignment: int32(1004), project: "p-2", status: "assigned", ts: jan(9, 6), processed: time.Second, created: jan(9, 0)},
	// 1005: assigned 12h → in_progress since Jan 10 12:00 (an update on
	// Jan 15 keeps the status): 228h at asOf, stuck; open 240h.
	{id: "a5-1", assignment: int32(1005), project: "p-3", status: "assigned", ts: jan(10, 0), created: jan(10, 0)},
	{id: "a5-2", assignment: int32(1005), project: "p-3", status: "in_progress", ts: jan(10, 12), created: jan(10, 0)},
	{id: "a5-3", assignment: int32(1005), project: "p-3", status: "in_progress", ts: jan(15, 0), created: jan(10, 0)},
	// 1006: assigned 24h → in_progress 24h at asOf: open 48h, not stuck.
	// Its completion on Jan 21 is after asOf.
	{id: "a6-1", assignment: int32(1006), project: "p-3", status: "assigned", ts: jan(18, 0), created: jan(18, 0)},
	{id: "a6-2", assignment: int32(1006), project: "p-3", status: "in_progress", ts: jan(19, 0), created: jan(18, 0)},
	{id: "a6-3", assignment: int32(1006), project: "p-3", status: "completed", ts: jan(21, 0), created: jan(18, 0)},
	// 1007: assigned since Jan 8, no task_created_at: 288h, stuck, the
	// oldest.
	{id: "a7-1", assignment: int32(1007), project: "p-4", status: "assigned", ts: jan(8, 0)},
	// Not counted: another task, and a row without assignment.
	{id: "x-1", task: 40000, assignment: int32(2001), project: "p-9", status: "assigned", ts: jan(8, 0)},
	{id: "x-2", assignment: nil, project: "p-9", status: "assigned", ts: jan(8, 0)},
}

// replays are rows written again with the same event_id (a replay): a1-1
// once, a1-4 twice, processed later.
var replays = []ev{
	{id: "a1-1", assignment: int32(1001), project: "p-1", status: "assigned", ts: jan(5, 9), processed: time.Hour, created: jan(5, 8)},
	{id: "a1-4", assignment: int32(1001), project: "p-1", status: "completed", ts: jan(6, 12), processed: time.Hour, created: jan(5, 8)},
	{id: "a1-4", assignment: int32(1001), project: "p-1", status: "completed", ts: jan(6, 12), processed: 2 * time.Hour, created: jan(5, 8)},
}

func build(t *testing.T, dir string, opts Options) *Report {
	t.Helper()
	db, err := query.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := Build(t.Context(), db, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return r
}

func dur(d time.Duration) *time.Duration { return &d }

func TestBuild(t *testing.T) {
	dir := newTable(t, lifecycles[:12], lifecycles[12:], replays)
	r := build(t, dir, Options{TaskID: templateID, AsOf: asOf})

	if r.TaskID != 32513 || !r.AsOf.Equal(asOf) || r.SLA != 72*h || r.StuckAfter != 72*h || r.Limit != 20 || r.TableVersion != 3 {
		t.Errorf("header: task %d, as of %v, SLA %v, stuck after %v, limit %d, version %d", r.TaskID, r.AsOf, r.SLA, r.StuckAfter, r.Limit, r.TableVersion)
	}
	// 4+4+6+3+3+2+1 events up to asOf; a1-1 once and a1-4 twice replayed;
	// a6-3 after asOf.
	if r.Events != 23 || r.DuplicateEvents != 3 || r.LaterEvents != 1 {
		t.Errorf("events %d, duplicates %d, later %d; want 23, 3, 1", r.Events, r.DuplicateEvents, r.LaterEvents)
	}

	twoThirds := 2.0 / 3
	wantSummary := Summary{
		Assignments: 7, Open: 3, Completed: 3, Cancelled: 1,
		ByStatus: []StatusCount{{"assigned", 1}, {"in_progress", 2}, {"completed", 3}, {"cancelled", 1}},
		// Times to complete 28h, 48h, 96h: median 48h; p90 at 1.8 of the
		// way: 48h + 0.8·48h.
		MedianTimeToComplete: dur(48 * h),
		P90TimeToComplete:    dur(48*h + 384*h/10),
		// 28h and 48h are within 72h; 1005 (240h) and 1007 (288h) are open
		// past it; 1006 (48h) is not.
		CompletedWithinSLA: 2,
		SLAShare:           &twoThirds,
		OpenPastSLA:        2,
		// 1005 (228h in in_progress) and 1007 (288h in assigned).
		Stuck: 2,
	}
	if !reflect.DeepEqual(r.Summary, wantSummary) {
		t.Errorf("summary:\n got %s\nwant %s", js(r.Summary), js(wantSummary))
	}

	wantStatuses := []StatusStats{
		// 2, 6, 6, 10, 12, 24, 288 h: median 10h; p90 at 5.4: 24h + 0.4·264h.
		{Status: "assigned", Assignments: 7, Median: 10 * h, P90: 24*h + 1056*h/10, Total: 348 * h},
		// 17, 21, 24, 62, 228 h: median 24h; p90 at 3.6: 62h + 0.6·166h.
		{Status: "in_progress", Assignments: 5, Median: 24 * h, P90: 62*h + 996*h/10, Total: 352 * h},
		{Status: "reassigned", Assignments: 1, Median: 24 * h, P90: 24 * h, Total: 24 * h},
		{Status: "reopened", Assignments: 1, Median: h, P90: h, Total: h},
		// Only 1003's first completion lasted (until reopened).
		{Status: "completed", Assignments: 1, Median: 24 * h, P90: 24 * h, Total: 24 * h},
	}
	if !reflect.DeepEqual(r.Statuses, wantStatuses) {
		t.Errorf("statuses:\n got %s\nwant %s", js(r.Statuses), js(wantStatuses))
	}

	wantStuck := []Stuck{
		{AssignmentID: 1007, ProjectID: "p-4", Status: "assigned", Since: jan(8, 0), For: 288 * h},
		{AssignmentID: 1005, ProjectID: "p-3", Status: "in_progress", Since: jan(10, 12), For: 228 * h},
	}
	if !reflect.DeepEqual(r.Stuck, wantStuck) {
		t.Errorf("stuck:\n got %s\nwant %s", js(r.Stuck), js(wantStuck))
	}

	type st = StatusTime
	wantAssignments := []Assignment{
		{AssignmentID: 1001, ProjectID: "p-1", CreatedAt: jan(5, 8), FirstSeen: jan(5, 9), LastEvent: jan(6, 12), Status: "completed", StatusSince: jan(6, 12),
			Events: 4, Transitions: 2, Completed: true, ClosedAt: jan(6, 12), TimeOpen: 28 * h,
			TimeInStatus: []st{{"assigned", 1, 6 * h}, {"in_progress", 1, 21 * h}}},
		{AssignmentID: 1002, ProjectID: "p-1", CreatedAt: jan(6, 0), FirstSeen: jan(6, 0), LastEvent: jan(10, 0), Status: "completed", StatusSince: jan(10, 0),
			Events: 4, Transitions: 3, Reassigned: 1, Completed: true, ClosedAt: jan(10, 0), TimeOpen: 96 * h,
			TimeInStatus: []st{{"assigned", 1, 10 * h}, {"reassigned", 1, 24 * h}, {"in_progress", 1, 62 * h}}},
		{AssignmentID: 1003, ProjectID: "p-2", CreatedAt: jan(6, 20), FirstSeen: jan(7, 0), LastEvent: jan(8, 20), Status: "completed", StatusSince: jan(8, 20),
			Events: 6, Transitions: 5, Reopened: 1, Completed: true, ClosedAt: jan(8, 20), TimeOpen: 48 * h,
			TimeInStatus: []st{{"assigned", 1, 2 * h}, {"in_progress", 2, 17 * h}, {"completed", 2, 24 * h}, {"reopened", 1, h}}},
		{AssignmentID: 1007, ProjectID: "p-4", CreatedAt: jan(8, 0), FirstSeen: jan(8, 0), LastEvent: jan(8, 0), Status: "assigned", StatusSince: jan(8, 0),
			Events: 1, Transitions: 0, TimeOpen: 288 * h,
			TimeInStatus: []st{{"assigned", 1, 288 * h}}},
		{AssignmentID: 1004, ProjectID: "p-2", CreatedAt: jan(9, 0), FirstSeen: jan(9, 0), LastEvent: jan(9, 6), Status: "cancelled", StatusSince: jan(9, 6),
			Events: 3, Transitions: 1, Cancelled: true, ClosedAt: jan(9, 6), TimeOpen: 6 * h,
			TimeInStatus: []st{{"assigned", 1, 6 * h}}},
		{AssignmentID: 1005, ProjectID: "p-3", CreatedAt: jan(10, 0), FirstSeen: jan(10, 0), LastEvent: jan(15, 0), Status: "in_progress", StatusSince: jan(10, 12),
			Events: 3, Transitions: 1, TimeOpen: 240 * h,
			TimeInStatus: []st{{"assigned", 1, 12 * h}, {"in_progress", 1, 228 * h}}},
		{AssignmentID: 1006, ProjectID: "p-3", CreatedAt: jan(18, 0), FirstSeen: jan(18, 0), LastEvent: jan(19, 0), Status: "in_progress", StatusSince: jan(19, 0),
			Events: 2, Transitions: 1, TimeOpen: 48 * h,
			TimeInStatus: []st{{"assigned", 1, 24 * h}, {"in_progress", 1, 24 * h}}},
	}
	if len(r.Assignments) != len(wantAssignments) {
		t.Fatalf("got %d assignments, want %d:\n%s", len(r.Assignments), len(wantAssignments), js(r.Assignments))
	}
	for i, want := range wantAssignments {
		if got := r.Assignments[i]; !reflect.DeepEqual(got, want) {
			t.Errorf("assignment %d:\n got %s\nwant %s", i, js(got), js(want))
		}
	}
}

// TestBuildOptions checks the limit, the thresholds and an earlier as-of.
func TestBuildOptions(t *testing.T) {
	dir := newTable(t, lifecycles, replays)
	db, err := query.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	t.Run("limit", func(t *testing.T) {
		r, err := Build(t.Context(), db, Options{TaskID: templateID, AsOf: asOf, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if r.Summary.Stuck != 2 || len(r.Stuck) != 1 || r.Stuck[0].AssignmentID != 1007 {
			t.Errorf("stuck %d, listed %s; want 2, only 1007", r.Summary.Stuck, js(r.Stuck))
		}
	})
	t.Run("thresholds", func(t *testing.T) {
		// SLA 28h: only 1001 (28h, inclusive); 1005, 1006 (48h, past 28h)
		// and 1007 open past it. Stuck after 228h: 1005 (exactly 228h) is
		// not, 1007 is.
		r, err := Build(t.Context(), db, Options{TaskID: templateID, AsOf: asOf, SLA: 28 * h, StuckAfter: 228 * h})
		if err != nil {
			t.Fatal(err)
		}
		s := r.Summary
		if s.CompletedWithinSLA != 1 || *s.SLAShare != 1.0/3 || s.OpenPastSLA != 3 || s.Stuck != 1 || len(r.Stuck) != 1 || r.Stuck[0].AssignmentID != 1007 {
			t.Errorf("got %s, stuck %s", js(s), js(r.Stuck))
		}
	})
	t.Run("as of Jan 7 06:00", func(t *testing.T) {
		// 1001 completed (28h); 1002 reassigned since 10:00 (20h); 1003
		// in_progress since 02:00. Later events: 24 - 4 - 2 - 2 = 16.
		r, err := Build(t.Context(), db, Options{TaskID: templateID, AsOf: jan(7, 6)})
		if err != nil {
			t.Fatal(err)
		}
		s := r.Summary
		if r.Events != 8 || r.LaterEvents != 16 || s.Assignments != 3 || s.Open != 2 || s.Completed != 1 ||
			*s.MedianTimeToComplete != 28*h || s.OpenPastSLA != 0 || s.Stuck != 0 {
			t.Fatalf("events %d, later %d, summary %s", r.Events, r.LaterEvents, js(s))
		}
		a := r.Assignments[1]
		if a.AssignmentID != 1002 || a.Status != "reassigned" || a.TimeOpen != 30*h ||
			!reflect.DeepEqual(a.TimeInStatus, []StatusTime{{"assigned", 1, 10 * h}, {"reassigned", 1, 20 * h}}) {
			t.Errorf("1002: %s", js(a))
		}
	})
	t.Run("other task", func(t *testing.T) {
		r, err := Build(t.Context(), db, Options{AsOf: asOf, TaskID: 40000})
		if err != nil {
			t.Fatal(err)
		}
		if r.Summary.Assignments != 1 || r.Assignments[0].AssignmentID != 2001 || r.Assignments[0].TimeOpen != 288*h {
			t.Errorf("got %s", js(r.Assignments))
		}
	})
	t.Run("negative", func(t *testing.T) {
		if _, err := Build(t.Context(), db, Options{TaskID: templateID, SLA: -h}); err == nil {
			t.Error("negative SLA accepted")
		}
		if _, err := Build(t.Context(), db, Options{AsOf: asOf}); !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "task template") {
			t.Errorf("no TaskID: got %v, want ErrInvalidOptions naming the task template", err)
		}
	})
}

func TestEmpty(t *testing.T) {
	dir := newTable(t)
	r := build(t, dir, Options{TaskID: templateID, AsOf: asOf})
	if r.Events != 0 || r.Summary.Assignments != 0 || r.Summary.MedianTimeToComplete != nil || r.Summary.SLAShare != nil ||
		len(r.Statuses) != 0 || len(r.Stuck) != 0 || len(r.Assignments) != 0 || r.TableVersion != 0 {
		t.Fatalf("got %s", js(r))
	}
	for _, f := range query.Formats {
		var b bytes.Buffer
		if err := Write(&b, r, f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if f == query.FormatTable && !strings.Contains(b.String(), "no assignments of task 32513") {
			t.Errorf("table:\n%s", b.String())
		}
		if f == query.FormatJSON {
			var got map[string]any
			if err := json.Unmarshal(b.Bytes(), &got); err != nil {
				t.Fatalf("json: %v\n%s", err, b.String())
			}
			if a, ok := got["assignments"].([]any); !ok || len(a) != 0 || got["summary"].(map[string]any)["sla_share"] != nil {
				t.Errorf("json:\n%s", b.String())
			}
		}
	}
}

func TestWrite(t *testing.T) {
	dir := newTable(t, lifecycles, replays)
	r := build(t, dir, Options{TaskID: templateID, AsOf: asOf})

	t.Run("table", func(t *testing.T) {
		var b bytes.Buffer
		if err := Write(&b, r, query.FormatTable); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range []string{
			"Task 32513 lifecycles as of 2026-01-20T00:00:00Z (table version 2)",
			"events 23, duplicates ignored 3, after as-of ignored 1",
			"time to complete, median   2d\n",
			"time to complete, p90      3d14h24m\n",
			"completed within SLA (3d)  2 of 3 (66.7%)\n",
			"\nassigned     7            10h     5d9h36m   14d12h\n",
			"1007           p-4         assigned     2026-01-08T00:00:00Z  12d\n",
			"assigned=2h in_progress=17h completed=1d reopened=1h\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in:\n%s", want, out)
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		recs := map[string][][]string{}
		for _, name := range Sections {
			if NeedsTimelines(name) {
				continue
			}
			var b bytes.Buffer
			if err := WriteCSV(&b, r, name); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			rr, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, b.String())
			}
			recs[name] = rr
		}
		var def bytes.Buffer
		if err := Write(&def, r, query.FormatCSV); err != nil {
			t.Fatal(err)
		}
		if rr, err := csv.NewReader(strings.NewReader(def.String())).ReadAll(); err != nil || !reflect.DeepEqual(rr, recs[DefaultSection]) {
			t.Errorf("Write csv is not the %s section (%v):\n%s", DefaultSection, err, def.String())
		}
		if err := WriteCSV(io.Discard, r, SectionTimeline); err == nil {
			t.Error("the timeline section of a report built without timelines: no error")
		}
		if err := WriteCSV(io.Discard, r, "nope"); !errors.Is(err, ErrUnknownSection) || !strings.Contains(err.Error(), "summary, current_status") {
			t.Errorf("unknown section: %v", err)
		}
		sum := recs["summary"]
		col := func(name string) string {
			if len(sum) == 2 {
				if i := slices.Index(sum[0], name); i >= 0 {
					return sum[1][i]
				}
			}
			return "(no column " + name + ")"
		}
		for name, want := range map[string]string{
			"task_id": "32513", "median_time_to_complete_seconds": "172800", "p90_time_to_complete_seconds": "311040",
			"sla_share": "0.6666666666666666", "open_past_sla": "2", "stuck": "2", "dropped_duplicates": "",
		} {
			if got := col(name); got != want {
				t.Errorf("summary %s: %q, want %q (%q)", name, got, want, sum)
			}
		}
		if st := recs["stuck"]; len(st) != 3 || strings.Join(st[2], ",") != "1005,p-3,in_progress,2026-01-10T12:00:00Z,820800" {
			t.Errorf("stuck: %q", st)
		}
		if a := recs["assignments"]; len(a) != 8 || a[3][0] != "1003" || a[3][15] != "assigned=7200;in_progress=61200;completed=86400;reopened=3600" || a[4][13] != "" {
			t.Errorf("assignments: %q", a)
		}
		if s := recs["time_in_status"]; len(s) != 6 || strings.Join(s[1], ",") != "assigned,7,36000,466560,1252800" {
			t.Errorf("time_in_status: %q", s)
		}
		if s := recs["current_status"]; len(s) != 5 || strings.Join(s[2], ",") != "in_progress,2" {
			t.Errorf("current_status: %q", s)
		}
	})
	t.Run("json", func(t *testing.T) {
		var b bytes.Buffer
		if err := Write(&b, r, query.FormatJSON); err != nil {
			t.Fatal(err)
		}
		var got jsonReport
		if err := json.Unmarshal(b.Bytes(), &got); err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		if got.Summary.Stuck != 2 || *got.Summary.P90TimeToCompleteSeconds != 311040 || got.Stuck[0].ForSeconds != 1036800 ||
			got.Assignments[0].ClosedAt == nil || *got.Assignments[0].ClosedAt != "2026-01-06T12:00:00Z" || got.Assignments[3].ClosedAt != nil ||
			got.TimeInStatus[1].TotalSeconds != 352*3600 || got.AsOf != "2026-01-20T00:00:00Z" {
			t.Errorf("got:\n%s", b.String())
		}
	})
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {250 * time.Millisecond, "250ms"}, {90 * time.Second, "1m30s"}, {72 * h, "3d"},
		{54*h + 30*time.Minute, "2d6h30m"}, {1500 * time.Millisecond, "2s"}, {-2 * h, "-2h"},
	} {
		if got := human(tc.d); got != tc.want {
			t.Errorf("human(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
