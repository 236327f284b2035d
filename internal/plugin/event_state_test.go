package plugin

import (
	"encoding/json"
	"testing"
	"time"

	"kpipe/internal/claimx"
)

func TestAtEvent(t *testing.T) {
	at := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return at.Add(d).Format(claimx.TimeFormat) }
	// A row fetched later: the task has moved on (reassigned to 20290,
	// completed an hour after the event).
	later := claimx.Row{"status": "completed", "previous_status": "in_progress", "assigned_to_user_id": int64(20290), "assigned_by_user_id": int64(10001),
		"created_at": ts(-48 * time.Hour), "updated_at": ts(time.Hour), "completed_at": ts(time.Hour)}
	// A row not updated since before the event: it shows the task as of it.
	current := claimx.Row{"status": "in_progress", "previous_status": "assigned", "assigned_to_user_id": int64(20111), "assigned_by_user_id": int64(10001),
		"created_at": ts(-48 * time.Hour), "updated_at": ts(-time.Hour), "completed_at": nil}
	completedBefore := claimx.Row{"status": "completed", "previous_status": "in_progress", "assigned_to_user_id": int64(20111), "assigned_by_user_id": int64(10001),
		"created_at": ts(-48 * time.Hour), "updated_at": ts(time.Hour), "completed_at": ts(-2 * time.Hour)}
	createdLater := claimx.Row{"status": "assigned", "created_at": ts(time.Hour), "updated_at": ts(time.Hour)}
	tests := []struct {
		name string
		typ  string
		raw  claimx.Row
		row  claimx.Row
		want TaskState
	}{
		{"hand-written assignment: the event's assignee, not the later row's", claimx.EventCustomTaskAssigned,
			claimx.Row{"status": "assigned", "previousStatus": nil, "assignedToUserId": int64(777), "assignedByUserId": int64(10001)}, later,
			TaskState{Status: "assigned", AssignedTo: 777, HasAssignedTo: true, AssignedBy: 10001, HasAssignedBy: true, CreatedAt: at.Add(-48 * time.Hour)}},
		{"completion: completed at the event's time", claimx.EventCustomTaskCompleted,
			claimx.Row{"status": "completed", "previousStatus": "in_progress", "assignedToUserId": int64(20111), "assignedByUserId": int64(10001)}, later,
			TaskState{Status: "completed", PreviousStatus: "in_progress", AssignedTo: 20111, HasAssignedTo: true, AssignedBy: 10001, HasAssignedBy: true, CreatedAt: at.Add(-48 * time.Hour), CompletedAt: at}},
		{"occurredAt is the event's time", claimx.EventCustomTaskCompleted,
			claimx.Row{"status": "completed", "previousStatus": "in_progress", "occurredAt": ts(-time.Minute)}, nil,
			TaskState{Status: "completed", PreviousStatus: "in_progress", CompletedAt: at.Add(-time.Minute)}},
		{"the event carries completedAt and createdAt", claimx.EventCustomTaskUpdated,
			claimx.Row{"status": "completed", "previousStatus": "completed", "completedAt": ts(-3 * time.Hour), "createdAt": ts(-50 * time.Hour)}, later,
			TaskState{Status: "completed", PreviousStatus: "completed", CreatedAt: at.Add(-50 * time.Hour), CompletedAt: at.Add(-3 * time.Hour)}},
		{"a later-completed row does not complete an open event", claimx.EventCustomTaskStatusChanged,
			claimx.Row{"status": "in_progress", "previousStatus": "assigned"}, later,
			TaskState{Status: "in_progress", PreviousStatus: "assigned", CreatedAt: at.Add(-48 * time.Hour)}},
		{"an event saying nothing: nothing from a later row", claimx.EventCustomTaskUpdated, claimx.Row{}, later,
			TaskState{CreatedAt: at.Add(-48 * time.Hour)}},
		{"an event saying nothing: the row as of the event", claimx.EventCustomTaskUpdated, claimx.Row{}, current,
			TaskState{Status: "in_progress", PreviousStatus: "assigned", AssignedTo: 20111, HasAssignedTo: true, AssignedBy: 10001, HasAssignedBy: true, CreatedAt: at.Add(-48 * time.Hour)}},
		{"an update of a completed task keeps the row's earlier completion", claimx.EventCustomTaskUpdated,
			claimx.Row{"status": "completed", "previousStatus": "completed"}, completedBefore,
			TaskState{Status: "completed", PreviousStatus: "completed", CreatedAt: at.Add(-48 * time.Hour), CompletedAt: at.Add(-2 * time.Hour)}},
		{"a row created after the event gives no created_at", claimx.EventCustomTaskAssigned, claimx.Row{}, createdLater,
			TaskState{Status: "assigned"}},
		{"no row", claimx.EventCustomTaskAssigned, claimx.Row{"assignedToUserId": int64(5)}, nil,
			TaskState{Status: "assigned", AssignedTo: 5, HasAssignedTo: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Enriched{Event: &claimx.Event{EventID: "e", EventType: tt.typ, IngestedAt: at}, Raw: tt.raw}
			if tt.row != nil {
				e.Task = entityOf(t, tt.row)
			}
			if got := e.AtEvent(); got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
			if got := e.TaskStatus(); got != tt.want.Status {
				t.Fatalf("TaskStatus = %q, want %q", got, tt.want.Status)
			}
		})
	}
}

// TestPayloadAtEvent: the payload's tracked fields are the event's, the
// fetched row stays whole in task, next to when it was fetched.
func TestPayloadAtEvent(t *testing.T) {
	p, err := NewTaskTrigger("itel_cabinet_api", specConfig(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ev := taskEvent(t, 32513, "assigned", "completed")
	ev.Raw["assignedToUserId"] = int64(777)
	ev.Raw["previousStatus"] = nil
	row := ev.Task.Row()
	row["assigned_to_user_id"] = int64(20290)
	row["completed_at"] = "2026-01-11T09:00:00.000Z"
	row["updated_at"] = "2026-01-11T09:00:00.000Z"
	row["created_at"] = "2026-01-10T12:34:56.789Z"
	ev.Task = entityOf(t, row)
	ev.Task.FetchedAt = time.Date(2026, 1, 11, 10, 0, 0, 0, time.UTC)
	var out Output
	if err := p.Handle(t.Context(), ev, &out); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Records[0].Value, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"task_status": "assigned", "previous_status": nil, "assigned_to_user_id": 777.0, "assigned_by_user_id": nil,
		"task_created_at": "2026-01-10T12:34:56.789Z", "task_completed_at": nil, "task_fetched_at": "2026-01-11T10:00:00.000Z"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if task, _ := got["task"].(map[string]any); task["assigned_to_user_id"] != 20290.0 || task["completed_at"] == nil {
		t.Errorf("task = %v, want the fetched row whole", got["task"])
	}
}
