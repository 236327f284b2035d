package claimx

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ExampleEvent is the claimx.events event a task assignment's current
// state would have produced: its event type follows the status
// (CUSTOM_TASK_ASSIGNED for assigned, CUSTOM_TASK_COMPLETED for
// completed, CUSTOM_TASK_STATUS_CHANGED otherwise), with a new random
// event_id, ingested_at now, and raw_data naming the assignment, its
// template and status. assignment is the row of TaskAssignment; it must
// hold assignment_id, project_id and status. "kpipe produce --example"
// injects it, so that an operator can push one event of a real assignment
// through the pipeline.
func ExampleEvent(assignment Row, now time.Time) (Event, error) {
	id, okID := assignment.Int64("assignment_id")
	project, okP := assignment.String("project_id")
	if !okP {
		if n, ok := assignment.Int64("project_id"); ok {
			project, okP = strconv.FormatInt(n, 10), true
		}
	}
	status, okS := assignment.String("status")
	if !okID || !okP || !okS {
		return Event{}, errors.New("the task assignment row lacks assignment_id, project_id or status")
	}
	typ := EventCustomTaskStatusChanged
	switch status {
	case StatusAssigned:
		typ = EventCustomTaskAssigned
	case StatusCompleted:
		typ = EventCustomTaskCompleted
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Event{}, err
	}
	raw := map[string]any{"eventType": typ, "projectId": project, "occurredAt": now.UTC().Format(time.RFC3339Nano),
		"taskAssignmentId": id, "status": status}
	if v, ok := assignment.Int64("task_id"); ok {
		raw["customTaskId"] = v
	}
	if v, ok := assignment.String("task_name"); ok {
		raw["customTaskName"] = v
	}
	if v, ok := assignment.String("previous_status"); ok {
		raw["previousStatus"] = v
	}
	rb, err := json.Marshal(raw)
	if err != nil {
		return Event{}, fmt.Errorf("example event raw_data: %w", err)
	}
	return Event{EventID: hex.EncodeToString(b[:]), EventType: typ, ProjectID: project, IngestedAt: now.UTC().Truncate(time.Millisecond),
		TaskAssignmentID: ID{Value: id, Valid: true}, RawData: rb}, nil
}
