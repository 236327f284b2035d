package query

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"kpipe/internal/delta"
)

// tableDefPath is the table definition kpipe creates the table from.
var tableDefPath = filepath.Join("..", "..", "config", "tables", "itel_cabinet_task_tracking.yaml")

// fixture is a Delta table written like the iTel worker writes it, and the
// rows that went into it (as the worker builds them: Go values typed by the
// column, JSON numbers as json.Number inside struct columns).
type fixture struct {
	dir     string
	rows    []map[string]any
	commits int
	now     time.Time
}

const itelTask = 32513

type ev struct {
	id         string
	typ        string
	ts         time.Time
	task       int32
	assignment any // int32 or nil
	status     string
	name       any // string or nil
	created    any // time.Time or nil
	completed  any // time.Time or nil
	full       map[string]any
	orig       map[string]any
	project    map[string]any
}

func num(s string) json.Number { return json.Number(s) }

func (e ev) row(processed time.Time) map[string]any {
	ts := e.ts.UTC()
	r := map[string]any{
		"event_id":            e.id,
		"event_type":          e.typ,
		"event_timestamp":     ts,
		"processed_timestamp": processed,
		"task_id":             e.task,
		"assignment_id":       e.assignment,
		"project_id":          "proj-7",
		"task_status":         e.status,
		"task_name":           e.name,
		"assigned_to_user_id": int32(501),
		"assigned_by_user_id": nil,
		"task_created_at":     e.created,
		"task_completed_at":   e.completed,
		"tracking_version":    "1.0",
		"source":              "claimx_itel_plugin",
		"year":                int32(ts.Year()),
		"month":               int32(ts.Month()),
		"day":                 int32(ts.Day()),
	}
	// The writer leaves an inferred struct column out until the first value;
	// afterwards a missing value is a null.
	for k, v := range map[string]map[string]any{"claimx_task_full": e.full, "original_event": e.orig, "project_data": e.project} {
		if v != nil {
			r[k] = v
		} else {
			r[k] = nil
		}
	}
	return r
}

// newFixture writes four commits: January 2026 (two days), then new struct
// fields (schema evolution), February 2026 with failed lookups and unicode,
// and recent events relative to now for the stuck-task query.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{dir: filepath.Join(t.TempDir(), "itel_cabinet_task_tracking"), now: time.Now().UTC()}
	def, err := delta.LoadTableDef(tableDefPath)
	if err != nil {
		t.Fatalf("LoadTableDef: %v", err)
	}
	store, err := delta.OpenLocation(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, store, def)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer tbl.Close(ctx)

	jan := func(d, h, m, s, us int) time.Time { return time.Date(2026, 1, d, h, m, s, us*1000, time.UTC) }
	feb := func(d, h, m, s, us int) time.Time { return time.Date(2026, 2, d, h, m, s, us*1000, time.UTC) }
	a := func(n int32) any { return n }
	full1 := func(status string) map[string]any {
		return map[string]any{"task_id": num("32513"), "status": status, "name": "iTel Cabinet Repair Form"}
	}
	orig := func(status string) map[string]any {
		return map[string]any{"status": status, "assigned_to_user_id": num("501")}
	}
	proj1 := map[string]any{"project_id": "proj-7", "name": "Smith kitchen"}

	commits := [][]ev{
		{ // January, two days; struct columns with their first fields.
			{id: "e01", typ: "CUSTOM_TASK_ASSIGNED", ts: jan(5, 9, 0, 0, 123456), task: itelTask, assignment: a(1001), status: "assigned", name: "Cabinet repair",
				created: jan(5, 8, 59, 0, 0), full: full1("assigned"), orig: orig("assigned"), project: proj1},
			{id: "e02", typ: "CUSTOM_TASK_UPDATED", ts: jan(5, 15, 30, 0, 0), task: itelTask, assignment: a(1001), status: "in_progress", name: "Cabinet repair",
				created: jan(5, 8, 59, 0, 0), full: full1("in_progress"), orig: orig("in_progress"), project: proj1},
			{id: "e03", typ: "CUSTOM_TASK_COMPLETED", ts: jan(6, 10, 0, 0, 500000), task: itelTask, assignment: a(1001), status: "completed", name: "Cabinet repair",
				created: jan(5, 8, 59, 0, 0), completed: jan(6, 10, 0, 0, 0), full: full1("completed"), orig: orig("completed"), project: proj1},
			{id: "e04", typ: "CUSTOM_TASK_ASSIGNED", ts: jan(6, 23, 59, 59, 999999), task: itelTask, assignment: a(1002), status: "assigned", name: "Cabinet repair",
				created: jan(6, 23, 0, 0, 0), full: full1("assigned"), orig: orig("assigned"), project: proj1},
		},
		{ // January again; claimx_task_full and project_data gain fields.
			{id: "e05", typ: "CUSTOM_TASK_UPDATED", ts: jan(7, 0, 0, 1, 0), task: itelTask, assignment: a(1002), status: "in_progress", name: "Cabinet repair",
				created: jan(6, 23, 0, 0, 0),
				full: map[string]any{"task_id": num("32513"), "status": "in_progress", "name": "iTel Cabinet Repair Form",
					"form": map[string]any{"cabinet_count": num("3"), "notes": "line 1\nline 2 \"quoted\" 'single'", "score": num("12.5")},
					"tags": []any{"kitchen", "urgent"}},
				orig:    orig("in_progress"),
				project: map[string]any{"project_id": "proj-7", "name": "Smith kitchen", "address": map[string]any{"city": "Austin", "zip": "78701"}}},
			{id: "e06", typ: "CUSTOM_TASK_REASSIGNED", ts: jan(20, 12, 0, 0, 0), task: itelTask, assignment: a(1002), status: "reassigned", name: "Cabinet repair",
				created: jan(6, 23, 0, 0, 0), full: full1("reassigned"), orig: orig("reassigned"), project: proj1},
		},
		{ // February: failed lookups (no claimx_task_full), unicode, nulls.
			{id: "e07", typ: "CUSTOM_TASK_ASSIGNED", ts: feb(1, 8, 0, 0, 1), task: itelTask, assignment: a(1003), status: "assigned", name: "Réparation d’armoire — 東京 🚀",
				created: feb(1, 7, 0, 0, 0), orig: orig("assigned"), project: map[string]any{"project_id": "proj-7", "name": "Ünïcødé ✓"}},
			{id: "e08", typ: "CUSTOM_TASK_COMPLETED", ts: feb(3, 17, 45, 30, 250000).Add(789 * time.Nanosecond), task: itelTask, assignment: a(1003), status: "completed", name: nil,
				created: feb(1, 7, 0, 0, 0), completed: feb(3, 17, 45, 0, 0), orig: orig("completed")},
			{id: "e09", typ: "CUSTOM_TASK_ASSIGNED", ts: feb(3, 18, 0, 0, 0), task: 40000, assignment: nil, status: "assigned", name: "Other form",
				full: map[string]any{"task_id": num("40000"), "status": "assigned"}},
		},
		{ // Recent events, relative to now: stuck and not stuck.
			{id: "e10", typ: "CUSTOM_TASK_ASSIGNED", ts: f.now.Add(-5 * 24 * time.Hour).Truncate(time.Microsecond), task: itelTask, assignment: a(1004), status: "assigned", name: "Cabinet repair",
				created: f.now.Add(-5 * 24 * time.Hour).Truncate(time.Second), full: full1("assigned")},
			{id: "e11", typ: "CUSTOM_TASK_ASSIGNED", ts: f.now.Add(-24 * time.Hour).Truncate(time.Microsecond), task: itelTask, assignment: a(1005), status: "assigned", name: "Cabinet repair",
				full: full1("assigned")},
			{id: "e12", typ: "CUSTOM_TASK_ASSIGNED", ts: f.now.Add(-10 * 24 * time.Hour).Truncate(time.Microsecond), task: itelTask, assignment: a(1006), status: "assigned", name: "Cabinet repair",
				full: full1("assigned")},
			{id: "e13", typ: "CUSTOM_TASK_CANCELLED", ts: f.now.Add(-9 * 24 * time.Hour).Truncate(time.Microsecond), task: itelTask, assignment: a(1006), status: "cancelled", name: "Cabinet repair",
				full: full1("cancelled")},
		},
	}
	processed := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, evs := range commits {
		rows := make([]map[string]any, len(evs))
		for j, e := range evs {
			rows[j] = e.row(processed.Add(time.Duration(i*100+j) * time.Millisecond))
			if i == 0 {
				// Before the first value, the writer has no such column yet.
				for _, k := range []string{"claimx_task_full", "original_event", "project_data"} {
					if rows[j][k] == nil {
						delete(rows[j], k)
					}
				}
			}
		}
		if _, err := tbl.Append(ctx, rows, delta.AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatalf("commit %d: %v", i+1, err)
		}
		f.rows = append(f.rows, rows...)
		f.commits++
	}
	return f
}

// emptyTable creates the table without writing any row.
func emptyTable(t *testing.T) string {
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
	if err := tbl.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	return dir
}
